// "Copy as curl": the API call a run or a batch makes (its language among the body's fields), as
// one shell command to paste into a terminal. It asks for the plain JSON answer, which a terminal shows whole;
// the page itself streams. The key itself is never written out: with a key set, the command reads
// it from $JSBOX_API_KEY.

/** The environment variable the command takes the key from. */
export const KEY_VARIABLE = "JSBOX_API_KEY";

/** `curl` posting `request` (the body the page would send) to the API at `url` (execute or batch). */
export function curlCommand(url, request, { withKey }) {
  const words = ["curl", "-s", shellQuote(url), "-H", shellQuote("content-type: application/json")];
  // Double quotes, so that the shell fills in the variable.
  if (withKey) words.push("-H", `"Authorization: Bearer $${KEY_VARIABLE}"`);
  words.push("-d", shellQuote(JSON.stringify(request)));
  return words.join(" ");
}

/** One word for a POSIX shell: bare when that is safe, else single-quoted ('\'' for a quote). */
function shellQuote(text) {
  if (/^[\w@%+=:,./-]+$/.test(text)) return text;
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
