// The parts of CodeMirror 6 the demo page's editor (frontend/editor.js) uses, re-exported so that
// build.mjs can bundle them, and only them, into the one file the page loads.

export { Annotation, Compartment, EditorState } from "@codemirror/state";
export {
  drawSelection,
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  keymap,
  lineNumbers,
} from "@codemirror/view";
export { defaultKeymap, history, historyKeymap, indentWithTab, isolateHistory } from "@codemirror/commands";
export { bracketMatching, indentOnInput, LanguageSupport, syntaxHighlighting } from "@codemirror/language";
export { javascriptLanguage, typescriptLanguage } from "@codemirror/lang-javascript";
export { highlightSelectionMatches, search, searchKeymap } from "@codemirror/search";
export { classHighlighter } from "@lezer/highlight";
