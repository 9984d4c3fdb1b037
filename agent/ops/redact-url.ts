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

/**
 * Text that may hold a URL's user part but need not parse as a URL (a mistyped list entry such as
 * `n2 ws://user:pw@host`, or `n2:ws://…`, which parses as a URL of scheme "n2:" with no password):
 * everything between its first "//" and its last "@" is masked (a password may hold either), or
 * everything before the "@" when no "//" comes first (a password cut in two by a list's comma).
 * Then as redactUrl (a `?password=`).
 */
export function redactUserinfo(text: string): string {
  const at = text.lastIndexOf("@");
  if (at < 0) return redactUrl(text);
  const slashes = text.indexOf("//");
  const from = slashes >= 0 && slashes < at ? slashes + 2 : 0;
  return redactUrl(`${text.slice(0, from)}redacted${text.slice(at)}`);
}
