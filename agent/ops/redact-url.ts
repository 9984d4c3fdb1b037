/**
 * The URL without its secrets, for logs, messages and status: the password in its user part and
 * any query parameter whose name says password (libpq takes `?password=`). A URL that does not
 * parse loses everything between "://" and "@" instead of being returned as it was.
 */
export function redactUrl(url: string): string {
  const secretParam = /pass/i;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@]*@/i, "$1redacted@").replace(/([?&][^=&]*pass[^=&]*=)[^&]*/gi, "$1redacted");
  }
  let changed = false;
  if (u.password !== "") {
    u.password = "redacted";
    changed = true;
  }
  for (const key of [...u.searchParams.keys()]) {
    if (secretParam.test(key)) {
      u.searchParams.set(key, "redacted");
      changed = true;
    }
  }
  return changed ? u.toString() : url;
}
