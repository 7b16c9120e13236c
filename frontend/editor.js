// The code editor: a plain <textarea> with a line-number gutter kept in step with it, Tab and
// Shift+Tab to indent and outdent, and Enter keeping the current line's indentation.
//
// Tab is taken over for indenting, which would trap keyboard users inside the field; pressing
// Escape first lets the next Tab (or Shift+Tab) move focus as usual (WCAG 2.1.2, "No Keyboard Trap").

const INDENT = "  ";
const MODIFIER_KEYS = new Set(["Shift", "Control", "Alt", "Meta"]);

/**
 * Wires up the editor and returns a small handle to read and replace its text.
 * `onChange` is called with the text after every edit.
 */
export function createEditor(textarea, gutter, { onChange }) {
  let lineCount = 0;
  let activeLine = -1;
  let tabLeavesField = false;

  function renderGutter() {
    const count = countLines(textarea.value);
    if (count !== lineCount) {
      const numbers = document.createDocumentFragment();
      for (let line = 1; line <= count; line++) {
        const number = document.createElement("div");
        number.textContent = String(line);
        numbers.append(number);
      }
      gutter.replaceChildren(numbers);
      lineCount = count;
      activeLine = -1;
    }
    highlightActiveLine();
    syncScroll();
  }

  function highlightActiveLine() {
    const line = countLines(textarea.value.slice(0, textarea.selectionStart)) - 1;
    if (line === activeLine) return;
    gutter.children[activeLine]?.classList.remove("active");
    gutter.children[line]?.classList.add("active");
    activeLine = line;
  }

  function syncScroll() {
    gutter.scrollTop = textarea.scrollTop;
  }

  textarea.addEventListener("input", () => {
    renderGutter();
    onChange?.(textarea.value);
  });
  textarea.addEventListener("scroll", syncScroll);
  textarea.addEventListener("blur", () => {
    tabLeavesField = false;
  });
  document.addEventListener("selectionchange", () => {
    if (document.activeElement === textarea) highlightActiveLine();
  });

  textarea.addEventListener("keydown", (event) => {
    if (event.isComposing || MODIFIER_KEYS.has(event.key)) return;
    if (event.key === "Escape") {
      tabLeavesField = true;
      return;
    }
    const leaving = tabLeavesField;
    tabLeavesField = false;

    if (event.key === "Tab" && !leaving && !event.ctrlKey && !event.altKey && !event.metaKey) {
      event.preventDefault();
      if (event.shiftKey) outdentSelection(textarea);
      else indentSelection(textarea);
    } else if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      insertNewlineKeepingIndent(textarea);
    }
  });

  renderGutter();

  return {
    get value() {
      return textarea.value;
    },
    /** Replaces the whole text (not undoable) and puts the caret at the start. */
    set value(text) {
      textarea.value = text;
      textarea.setSelectionRange(0, 0);
      textarea.scrollTop = 0;
      textarea.scrollLeft = 0;
      renderGutter();
    },
    focus() {
      textarea.focus();
    },
  };
}

function countLines(text) {
  let lines = 1;
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) lines++;
  return lines;
}

/** Replaces `[from, to)` with `text` through the browser's editing commands, so Ctrl+Z undoes it. */
function replaceRange(textarea, from, to, text) {
  textarea.setSelectionRange(from, to);
  // execCommand is deprecated but still the only way to edit a textarea and keep its undo history.
  const done = text === "" ? document.execCommand("delete") : document.execCommand("insertText", false, text);
  if (!done) {
    textarea.setRangeText(text, from, to, "end");
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  }
}

/** The start of the line holding `start` and the end of the line holding the selection's end. */
function selectedLineBlock(textarea) {
  const { value, selectionStart: start } = textarea;
  let end = textarea.selectionEnd;
  // A selection that ends just after a newline does not include the next line.
  if (end > start && value[end - 1] === "\n") end--;
  const blockStart = value.lastIndexOf("\n", start - 1) + 1;
  const newline = value.indexOf("\n", end);
  return { blockStart, blockEnd: newline === -1 ? value.length : newline };
}

function indentSelection(textarea) {
  const { value, selectionStart: start, selectionEnd: end } = textarea;
  if (!value.slice(start, end).includes("\n")) {
    replaceRange(textarea, start, end, INDENT);
    return;
  }
  const { blockStart, blockEnd } = selectedLineBlock(textarea);
  const lines = value.slice(blockStart, blockEnd).split("\n");
  const indented = lines.map((line) => (line.trim() === "" ? line : INDENT + line));
  const added = indented.join("\n").length - (blockEnd - blockStart);
  const firstAdded = indented[0].length - lines[0].length;
  replaceRange(textarea, blockStart, blockEnd, indented.join("\n"));
  textarea.setSelectionRange(start + firstAdded, end + added);
}

function outdentSelection(textarea) {
  const { value, selectionStart: start, selectionEnd: end } = textarea;
  const { blockStart, blockEnd } = selectedLineBlock(textarea);
  const lines = value.slice(blockStart, blockEnd).split("\n");
  const outdented = lines.map((line) => line.replace(/^(?: {1,2}|\t)/, ""));
  const removed = lines[0].length - outdented[0].length;
  const removedTotal = blockEnd - blockStart - outdented.join("\n").length;
  if (removedTotal === 0) return;
  replaceRange(textarea, blockStart, blockEnd, outdented.join("\n"));
  const newStart = Math.max(blockStart, start - removed);
  textarea.setSelectionRange(newStart, Math.max(newStart, end - removedTotal));
}

function insertNewlineKeepingIndent(textarea) {
  const { value, selectionStart: start, selectionEnd: end } = textarea;
  const lineStart = value.lastIndexOf("\n", start - 1) + 1;
  const indent = /^[ \t]*/.exec(value.slice(lineStart, start))[0];
  replaceRange(textarea, start, end, "\n" + indent);
}
