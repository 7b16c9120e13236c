// How the editor looks. CodeMirror draws its parts with styles of its own (injected as constructable
// stylesheets, which the page's CSP allows); this theme redraws them with the page's colour custom
// properties from style.css, so the editor follows prefers-color-scheme with the rest of the page.
// Tokens carry @lezer/highlight's stable `tok-*` classes (see editor.js) and are coloured here.
//
// CodeMirror's own defaults come in a light and a dark variant (`&light`, `&dark`); the page never
// declares the editor dark, so every rule below that replaces a `&light` default must be at least
// as specific as that default, and later rules of equal weight win.

import { EditorView } from "./vendor/codemirror.js";

const selection = { background: "var(--selection)" };

export const editorTheme = EditorView.theme({
  "&": {
    flex: "1",
    minWidth: "0",
    color: "var(--text)",
    backgroundColor: "var(--surface-sunken)",
  },
  // The focus ring is the page's .editor container's (style.css), around the gutter and the text.
  "&.cm-focused": { outline: "none" },
  ".cm-scroller": {
    fontFamily: "var(--font-code)",
    lineHeight: "var(--code-line)",
  },
  ".cm-content": {
    padding: "0.75rem 0",
    caretColor: "var(--text)",
  },
  ".cm-line": { padding: "0 0.75rem" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--text)" },
  ".cm-selectionBackground": selection,
  "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground": selection,
  ".cm-content ::selection": selection,
  ".cm-activeLine": { backgroundColor: "var(--active-line)" },
  ".cm-gutters": {
    backgroundColor: "var(--surface-sunken)",
    color: "var(--text-muted)",
    borderColor: "var(--border)",
  },
  ".cm-lineNumbers .cm-gutterElement": {
    minWidth: "2.5rem",
    padding: "0 0.75rem 0 0.5rem",
  },
  ".cm-activeLineGutter": {
    backgroundColor: "var(--active-line)",
    color: "var(--text)",
    fontWeight: "700",
  },
  "&.cm-focused .cm-matchingBracket": {
    backgroundColor: "var(--bracket-match)",
    outline: "1px solid var(--border-strong)",
  },
  "&.cm-focused .cm-nonmatchingBracket": {
    backgroundColor: "var(--error-bg)",
    color: "var(--error)",
  },
  ".cm-searchMatch": {
    backgroundColor: "var(--search-match)",
    outline: "1px solid var(--warn)",
  },
  ".cm-searchMatch-selected": { backgroundColor: "var(--search-match-selected)" },
  ".cm-selectionMatch": { backgroundColor: "var(--selection-match)" },

  // The search panel, styled like the page's own controls.
  ".cm-panels": {
    backgroundColor: "var(--surface)",
    color: "var(--text)",
    fontFamily: "var(--font-ui)",
  },
  ".cm-panels-top": { borderBottom: "1px solid var(--border)" },
  ".cm-panels-bottom": { borderTop: "1px solid var(--border)" },
  ".cm-panel.cm-search": { padding: "0.4rem 2.25rem 0.4rem 0.75rem" },
  ".cm-panel.cm-search label": { fontSize: "0.8rem", color: "var(--text-muted)" },
  ".cm-textfield, .cm-button": {
    minHeight: "2rem",
    border: "1px solid var(--border-strong)",
    borderRadius: "var(--radius-small)",
    color: "var(--text)",
    font: "inherit",
    fontSize: "0.85rem",
  },
  ".cm-textfield": {
    backgroundColor: "var(--surface)",
    padding: "0.2rem 0.5rem",
  },
  ".cm-button": {
    backgroundColor: "var(--surface-sunken)",
    backgroundImage: "none",
    padding: "0.2rem 0.75rem",
    "&:active": { backgroundImage: "none", backgroundColor: "var(--border)" },
  },
  ".cm-panel.cm-search [name=close]": {
    minWidth: "2rem",
    minHeight: "2rem",
    color: "var(--text-muted)",
    fontSize: "1.25rem",
    cursor: "pointer",
  },

  // Syntax colours (classHighlighter's classes).
  ".tok-keyword, .tok-operator.tok-keyword": { color: "var(--syntax-keyword)" },
  ".tok-string, .tok-string2": { color: "var(--syntax-string)" },
  ".tok-number": { color: "var(--syntax-number)" },
  ".tok-bool, .tok-atom, .tok-literal": { color: "var(--syntax-literal)" },
  ".tok-propertyName": { color: "var(--syntax-property)" },
  ".tok-variableName.tok-definition, .tok-propertyName.tok-definition, .tok-className, .tok-typeName": {
    color: "var(--syntax-definition)",
  },
  ".tok-comment": { color: "var(--syntax-comment)", fontStyle: "italic" },
  ".tok-invalid": { color: "var(--error)" },
});
