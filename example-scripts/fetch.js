// fetch, for tenants whose grant in the tenants file lists the host (off by default, and off
// for the demo page's anonymous tier): the request is made by the sandbox, never to an
// internal address, within the execution's caps and deadline.
(async () => {
  if (typeof fetch !== 'function') {
    return 'fetch is not enabled for this tenant: the tenants file grants it per tenant, e.g. '
      + 'fetch = { hosts = ["api.github.com"] }';
  }
  const response = await fetch('https://api.github.com/repos/quickjs-ng/quickjs', {
    headers: { accept: 'application/vnd.github+json' },
  });
  console.log(response.status, response.headers.get('content-type'));
  const repo = await response.json();
  return { name: repo.full_name, stars: repo.stargazers_count };
})()
