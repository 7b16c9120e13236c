// URL and URLSearchParams, parsed as the WHATWG URL standard says.
const url = new URL("https://user@example.com:8443/a/../b/c?q=1&q=2#top");
url.searchParams.append("lang", "en");
url.pathname += "/d e";

const params = new URLSearchParams({ b: "2", a: "1" });
params.sort();

console.log(url.href);
({
  host: url.host,
  pathname: url.pathname,
  q: url.searchParams.getAll("q"),
  relative: new URL("../x?y#z", url).href,
  params: params.toString(),
  valid: [URL.canParse("https://ok.example"), URL.canParse("not a url")],
});
