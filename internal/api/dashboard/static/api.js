// The REST API as the dashboard uses it: bearer token from the login,
// kept in sessionStorage (gone when the tab closes); errors as the API
// sends them ({code, message}); long operations as NDJSON streams of
// progress lines ending in a result or an error (docs/rest-api.md).

const TOKEN = 'roost.token';
const USER = 'roost.user';

// APIError is a failed call: the HTTP status and the API's code and
// message, and the whole body (a 422 INVALID_FILE lists its problems).
export class APIError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body || {};
  }
}

export const session = {
  token: () => sessionStorage.getItem(TOKEN),
  user: () => sessionStorage.getItem(USER),
  set(login) {
    sessionStorage.setItem(TOKEN, login.token);
    sessionStorage.setItem(USER, login.username);
  },
  clear() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(USER);
  },
};

// A 401 means the token expired or was revoked: the app shows the login
// form again with the API's message.
function unauthorized(err) {
  session.clear();
  window.dispatchEvent(new CustomEvent('roost:unauthorized', { detail: err }));
}

function authHeaders(extra) {
  const h = Object.assign({}, extra);
  const t = session.token();
  if (t) h.Authorization = 'Bearer ' + t;
  return h;
}

// errorFrom turns a failed answer into an APIError, keeping the API's
// code and message exactly.
async function errorFrom(res) {
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON: shown as text */ }
  if (body && body.code) return new APIError(res.status, body.code, body.message, body);
  return new APIError(res.status, 'HTTP_' + res.status, text.trim() || res.statusText, body);
}

async function check(res) {
  if (res.ok) return res;
  const err = await errorFrom(res);
  if (res.status === 401) unauthorized(err);
  throw err;
}

// call sends one request and returns the decoded JSON answer (null for
// 204).
export async function call(method, path, body) {
  const headers = authHeaders(body === undefined ? {} : { 'Content-Type': 'application/json' });
  const res = await check(await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store',
  }));
  if (res.status === 204) return null;
  return res.json();
}

// login exchanges a username and password for a token (401: wrong
// username or password, shown on the form, not a session end).
export async function login(username, password) {
  const res = await fetch('/api/v1/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password }),
  });
  if (!res.ok) throw await errorFrom(res);
  const out = await res.json();
  session.set(out);
  return out;
}

// stream POSTs body asking for NDJSON and calls onProgress with each
// progress object; it returns the result, or throws the error line as an
// APIError. A node that answers plain JSON works too.
export async function stream(path, body, onProgress) {
  return readStream(await fetch(path, {
    method: 'POST', cache: 'no-store',
    headers: authHeaders({ 'Content-Type': 'application/json', Accept: 'application/x-ndjson' }),
    body: JSON.stringify(body || {}),
  }), onProgress);
}

// importFile imports (or dry-runs) a file from this browser without
// leaving a copy on the node: a multipart POST /api/v1/data/import with
// the options, then the file (docs/rest-api.md). Progress and result come
// as for stream.
export async function importFile(file, options, onProgress) {
  const form = new FormData();
  form.append('options', new Blob([JSON.stringify(Object.assign({ filename: file.name }, options))], { type: 'application/json' }));
  form.append('file', file, file.name);
  return readStream(await fetch('/api/v1/data/import', {
    method: 'POST', cache: 'no-store', headers: authHeaders({ Accept: 'application/x-ndjson' }), body: form,
  }), onProgress);
}

async function readStream(answer, onProgress) {
  const res = await check(answer);
  if (!(res.headers.get('Content-Type') || '').startsWith('application/x-ndjson')) return res.json();
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line);
      if (msg.progress) onProgress && onProgress(msg.progress);
      else if (msg.result) return msg.result;
      else if (msg.error) throw new APIError(statusOf(msg.error.code), msg.error.code, msg.error.message, msg.error);
    }
    if (done) break;
  }
  throw new APIError(0, 'STREAM_ENDED', 'the node closed the connection before answering (did it stop?)');
}

// statusOf maps an error code of a stream's error line back to its HTTP
// status (the stream itself is 200), for callers that switch on it.
function statusOf(code) {
  return { BAD_REQUEST: 400, UNAUTHORIZED: 401, FORBIDDEN: 403, NOT_FOUND: 404, CONFLICT: 409, ALREADY_EXISTS: 409,
    INVALID_FILE: 422, SERVICE_UNAVAILABLE: 503 }[code] || 500;
}

// download fetches a file with the bearer token and hands it to the
// browser as a download under its own name.
export async function download(path, filename) {
  const res = await check(await fetch(path, { headers: authHeaders(), cache: 'no-store' }));
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // The download has its own copy once started; give it a moment.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return blob.size;
}

// Remote listings: the off-site target's side of each list. The
// dashboard asks with ?remote=true and shows the items of an answer that
// says it is remote and where ({"remote": true, "location": "s3://…",
// "backups"|"data": [...]}). A node whose backup.target is not set
// answers 400 NO_REMOTE_TARGET; a node without the feature ignores the
// parameter and sends its local list ("remote" false or missing): both
// mean no remote target is configured. The routes, fields and code are
// these constants (docs/rest-api.md).
export const REMOTE = {
  backups: { path: '/api/v1/backups?remote=true', items: 'backups' },
  exports: { path: '/api/v1/data/files?remote=true', items: 'data' },
  none: 'NO_REMOTE_TARGET',
};

export async function remoteList(which) {
  const r = REMOTE[which];
  let out;
  try {
    out = await call('GET', r.path);
  } catch (e) {
    if (e.code === REMOTE.none) return null;
    throw e;
  }
  if (!out || out.remote !== true || typeof out.location !== 'string' || !out.location) return null;
  return { target: out.location, items: out[r.items] || [] };
}
