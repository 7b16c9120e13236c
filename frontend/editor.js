// The code editor: CodeMirror 6 (bundled into vendor/codemirror.js by frontend-build/) with
// JavaScript or TypeScript highlighting (switched without losing the text), line numbers, bracket matching, search (Ctrl/Cmd+F), undo history, and
// Ctrl/Cmd+Enter to run.
//
// Tab indents and Shift+Tab outdents, which would trap keyboard users inside the editor; CodeMirror
// lets the Tab pressed within two seconds of Escape move focus as usual (WCAG 2.1.2, "No Keyboard
// Trap"), and the hint under the editor says so.
//
// The editor lives in a shadow root of its container. CodeMirror injects its styles at run time:
// into a document it adds a <style> element, which the page's CSP (style-src 'self') refuses; into
// a shadow root it adopts a constructed stylesheet, which CSP allows. Page styles do not reach into
// the shadow root, but inherited values and custom properties do (see editor-theme.js).

import {
  Annotation,
  bracketMatching,
  classHighlighter,
  Compartment,
  defaultKeymap,
  drawSelection,
  EditorState,
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSelectionMatches,
  highlightSpecialChars,
  history,
  historyKeymap,
  indentOnInput,
  indentWithTab,
  isolateHistory,
  javascriptLanguage,
  keymap,
  LanguageSupport,
  lineNumbers,
  search,
  searchKeymap,
  syntaxHighlighting,
  typescriptLanguage,
} from "./vendor/codemirror.js";
import { editorTheme } from "./editor-theme.js";

/** How long after Escape a Tab moves focus instead of indenting (CodeMirror's own choice). */
const TAB_FREED_AFTER_ESCAPE_MS = 2000;

/** Marks text the page put in (an example, a shared run), which is not the user's edit. */
const replacedByPage = Annotation.define();

/** The grammar and the accessible name for each language the API runs. */
const LANGUAGES = {
  javascript: { support: new LanguageSupport(javascriptLanguage), label: "JavaScript code" },
  typescript: { support: new LanguageSupport(typescriptLanguage), label: "TypeScript code" },
};

/** Whether the editor (and the API) knows `name` as a language. */
export function isLanguage(name) {
  return Object.hasOwn(LANGUAGES, name ?? "");
}

/**
 * Creates the editor inside `host` and returns a small handle to read and replace its text and
 * switch its language ("javascript" or "typescript", which also names it: "TypeScript code").
 * `hint` is the element that describes it; `onChange` is called with the text after every edit
 * of the user's, `onRun` on Ctrl/Cmd+Enter.
 */
export function createEditor(host, { text, language, hint, onChange, onRun }) {
  const runShortcut = () => {
    onRun();
    return true;
  };
  const grammar = new Compartment();
  const name = new Compartment();
  const languageExtensions = (language) => ({
    grammar: LANGUAGES[language].support,
    name: EditorView.contentAttributes.of({ "aria-label": LANGUAGES[language].label }),
  });
  const initial = languageExtensions(language);
  let currentLanguage = language;
  const root = host.attachShadow({ mode: "open" });
  const view = new EditorView({
    root,
    parent: root,
    state: EditorState.create({
      doc: text,
      extensions: [
        // First, so that Ctrl+Enter runs instead of inserting a blank line.
        keymap.of([
          { key: "Mod-Enter", run: runShortcut },
          { key: "Ctrl-Enter", run: runShortcut },
        ]),
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        history(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        search({ top: true }),
        grammar.of(initial.grammar),
        syntaxHighlighting(classHighlighter),
        keymap.of([...defaultKeymap, ...searchKeymap, ...historyKeymap, indentWithTab]),
        // CodeMirror frees Tab after Escape only when no command took the key, and Escape first
        // collapses a selection; free it on every Escape so that "Esc then Tab" always leaves.
        EditorView.domEventObservers({
          keydown(event, view) {
            if (event.key === "Escape") view.setTabFocusMode(TAB_FREED_AFTER_ESCAPE_MS);
          },
        }),
        EditorView.domEventHandlers({ beforeinput: typeOverSelection }),
        name.of(initial.name),
        EditorView.updateListener.of((update) => {
          if (update.docChanged && !update.transactions.every((tr) => tr.annotation(replacedByPage))) {
            onChange(update.state.doc.toString());
          }
        }),
        editorTheme,
      ],
    }),
  });
  describeBy(view.contentDOM, hint);

  return {
    get value() {
      return view.state.doc.toString();
    },
    /** Replaces the whole text, as one step of its own in the undo history, with the caret at the start. */
    set value(text) {
      view.dispatch({
        changes: { from: 0, to: view.state.doc.length, insert: text },
        selection: { anchor: 0 },
        annotations: [replacedByPage.of(true), isolateHistory.of("full")],
        scrollIntoView: true,
      });
    },
    get language() {
      return currentLanguage;
    },
    /** Highlights (and names) the text as `language`; the text and its undo history stay. */
    set language(language) {
      if (language === currentLanguage) return;
      currentLanguage = language;
      const next = languageExtensions(language);
      view.dispatch({ effects: [grammar.reconfigure(next.grammar), name.reconfigure(next.name)] });
    },
    focus() {
      view.focus();
    },
  };
}

/**
 * Typing over a selection is left to the browser by default, and Chromium, merging the lines'
 * elements, writes inline style attributes, which the CSP refuses (a console error; CodeMirror then
 * redraws the lines). The editor makes that edit itself instead.
 */
function typeOverSelection(event, view) {
  const { state } = view;
  if (event.inputType !== "insertText" || !event.data || view.composing) return false;
  if (state.selection.ranges.every((range) => range.empty)) return false;
  event.preventDefault();
  view.dispatch(state.update(state.replaceSelection(event.data), { userEvent: "input.type", scrollIntoView: true }));
  return true;
}

/**
 * aria-describedby cannot name an element outside the shadow root, but the element reference it
 * reflects can; where that is not supported, the hint's text is the description.
 */
function describeBy(element, hint) {
  if ("ariaDescribedByElements" in element) element.ariaDescribedByElements = [hint];
  else element.setAttribute("aria-description", hint.textContent.replace(/\s+/g, " ").trim());
}
