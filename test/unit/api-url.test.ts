/**
 * The CLI's check of the API URL (agent/cli/api-url.ts): a URL the WHATWG parser refuses is told
 * apart by what is wrong with it (the hostile dry run's F14c: a bad port was reported as "not an
 * http:// or https:// URL").
 */
import { describe, expect, it } from "vitest";
import { apiUrlFault } from "../../agent/cli/api-url.js";

const GIVE = "; give the agent's API address, e.g. http://127.0.0.1:7180";

describe("apiUrlFault", () => {
  it("takes http(s) URLs with a host and a port that can be dialled", () => {
    for (const url of ["http://127.0.0.1:7180", "https://agent.example:8443/", "http://[::1]:7180", "http://h:", "HTTP://H:7180"]) expect(apiUrlFault(url), url).toBeNull();
  });

  it("names a port that is not a number from 1 to 65535, rather than the scheme", () => {
    expect(apiUrlFault("http://127.0.0.1:notaport")).toBe(`has port "notaport", which is not a number from 1 to 65535${GIVE}`);
    expect(apiUrlFault("http://h:99999")).toBe(`has port "99999", which is not a number from 1 to 65535${GIVE}`);
    expect(apiUrlFault("http://h:-1")).toBe(`has port "-1", which is not a number from 1 to 65535${GIVE}`);
    expect(apiUrlFault("http://user@h:x")).toBe(`has port "x", which is not a number from 1 to 65535${GIVE}`);
    expect(apiUrlFault("http://[::1]:x")).toBe(`has port "x", which is not a number from 1 to 65535${GIVE}`);
    expect(apiUrlFault("http://h:0")).toMatch(/^has port 0, which cannot be dialled/);
    expect(apiUrlFault("http://127.0.0.1:6000")).toMatch(/^uses port 6000, which fetch and browsers refuse to dial; move api\.listen/);
  });

  it("names a missing or malformed host", () => {
    expect(apiUrlFault("http://:80")).toBe(`has no host${GIVE}`);
    expect(apiUrlFault("http://[::1")).toMatch(/^has an IPv6 host without its closing bracket \("\[::1"\); write it as \[::1\]:7180/);
    expect(apiUrlFault("http://a b:80")).toMatch(/^has a host the URL parser refuses \("a b"\)/);
  });

  it("says a URL without http:// or https:// is not one", () => {
    for (const url of ["127.0.0.1:7180", "localhost:7180", "foo", "ws://127.0.0.1:7180"]) expect(apiUrlFault(url), url).toBe(`is not an http:// or https:// URL${GIVE}`);
  });
});
