// Regular expressions: literals with every flag, named groups, lookbehind, Unicode property
// escapes, sticky and global matching, replace with functions, and split.
const date = /(?<year>\d{4})-(?<month>\d{2})-(?<day>\d{2})/u;
const { groups: { year, month, day } } = "on 2024-02-29 at noon".match(date);
const words = "The quick brown fox jumps over the lazy dog".match(/\b\w+\b/g);
const lookbehind = "$10 €20 $30".match(/(?<=\$)\d+/g);
const lookahead = "price: 100px 200em 300px".match(/\d+(?=px)/g);
const letters = "Ünïcödé ẞtraße ελληνικά".match(/\p{Letter}+/gu);
const emoji = /\p{Emoji_Presentation}/u.test("ok 👍");
const sticky = /foo/y;
sticky.lastIndex = 3;
const stickyMatch = sticky.test("barfoo");
const replaced = "a-b_c d".replace(/[-_ ](\w)/g, (_, letter) => letter.toUpperCase());
const parts = "one, two;three  four".split(/[,;\s]+/);
const dotAll = /start.end/s.test("start\nend");
const indices = /(?<word>b+)/d.exec("aabbbcc").indices.groups.word;
const backreference = /(\w)\1/.test("hello");
const alternation = /^(?:https?|ftp):\/\/([^/:]+)(?::(\d+))?(\/.*)?$/i.exec("HTTPS://example.com:8080/path?q=1");
const classes = /[\u0041-\u005A\d_$-]+/.exec("$ABC_123-x");
const quantifiers = /a{2,3}b*?c+?d?/.exec("aaabbbccd");
const all = [..."a1b2c3".matchAll(/(?<letter>[a-z])(?<digit>\d)/g)].map((m) => m.groups.letter + m.groups.digit);
const constructed = new RegExp(`^${["x", "y", "z"].join("|")}$`, "gim");
const vflag = /[\p{L}--[a-z]]/v.test("Á");
[year, month, day, words.length, lookbehind, lookahead, letters, emoji, stickyMatch, replaced, parts, dotAll, indices, backreference, alternation, classes, quantifiers, all, constructed.source, vflag];
