// Template literals: nesting, tagged templates with raw strings, expressions of every kind
// inside substitutions, and long multi-line templates.
const name = "world";
const items = [{ label: "tea", price: 3 }, { label: "cake", price: 4.5 }];
function html(strings, ...values) {
  return strings.raw.reduce((out, raw, i) => out + raw + (i < values.length ? String(values[i]).replace(/[<>&]/g, (c) => `&#${c.charCodeAt(0)};`) : ""), "");
}
const tagCache = (strings) => strings;
const same = tagCache`x` === tagCache`x`;
const nested = `outer ${`middle ${`inner ${name.toUpperCase()}`}`} end`;
const table = `
<table>
  ${items.map(({ label, price }, index) => `<tr class="${index % 2 ? "odd" : "even"}">
    <td>${label}</td><td>${price.toFixed(2)}</td><td>${price > 4 ? `expensive ${"!".repeat(3)}` : "cheap"}</td>
  </tr>`).join("\n  ")}
</table>`;
const escaped = html`<p>${"<script>"} & ${name}</p>\n`;
const raw = String.raw`C:\path\to\${name}\n`;
const expressions = `${1 + 2} ${[1, 2, 3]} ${{ toString() { return "object"; } }} ${typeof name} ${name ?? "none"} ${(() => "iife")()} ${new Date(0).toISOString()}`;
const unicode = `\u{1F600} \x41 \u0042 \t tab`;
const long = `${"line\n".repeat(50)}${Array.from({ length: 40 }, (_, i) => `${i}: ${i * i}`).join(", ")}`;
[nested, table, escaped, raw, expressions, unicode, long.length, same];
