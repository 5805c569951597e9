// Small DOM helpers. Text from the API only ever goes in as text
// (textContent), never as HTML.

export const $ = (id) => document.getElementById(id);

// el builds an element: el('td', {class: 'num'}, 'text', child, ...).
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// setText sets an element's text, with an em dash for nothing.
export function setText(id, v) {
  $(id).textContent = v === undefined || v === null || v === '' ? '—' : String(v);
}

// showError shows an API error as the API sent it: its code, then its
// message (and, for an invalid file, its problems). null hides the box.
export function showError(box, err) {
  if (typeof box === 'string') box = $(box);
  box.replaceChildren();
  if (!err) {
    box.hidden = true;
    return;
  }
  const code = err.code || 'ERROR';
  box.append(el('code', { class: 'errcode' }, code), ' ', el('span', { class: 'errmsg' }, err.message || String(err)));
  const problems = err.body && err.body.problems;
  if (Array.isArray(problems) && problems.length) {
    const ul = el('ul', { class: 'problems' });
    for (const p of problems.slice(0, 50)) ul.append(el('li', {}, problemText(p)));
    if (err.body.problem_count > 50) ul.append(el('li', {}, `… and ${err.body.problem_count - 50} more`));
    box.append(ul);
  }
  box.hidden = false;
}

export function problemText(p) {
  let where = p.table || '';
  if (p.record) where += ` record ${p.record}`;
  if (p.field) where += ` field "${p.field}"`;
  return where.trim() ? `${where.trim()}: ${p.message}` : p.message;
}

export function bytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function time(s) {
  if (!s) return '—';
  const d = new Date(s);
  if (isNaN(d)) return s;
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short',
  });
}

// Job is one long operation's progress bar and line.
export class Job {
  constructor(prefix) {
    this.box = $(prefix + '-job');
    this.bar = $(prefix + '-progress');
    this.text = $(prefix + '-progress-text');
  }

  start(label) {
    this.box.hidden = false;
    this.box.dataset.state = 'running';
    this.bar.removeAttribute('value'); // indeterminate until the first report
    this.bar.dataset.updates = '0';
    delete this.bar.dataset.last;
    this.text.textContent = label;
  }

  // update shows a fraction (0..1, or null: not known yet) and a line.
  update(fraction, line) {
    if (fraction === null || fraction === undefined || !isFinite(fraction)) this.bar.removeAttribute('value');
    else this.bar.value = Math.min(Math.max(fraction, 0), 1);
    // For tests and for anyone inspecting the page: how many reports came,
    // and what the last one said.
    this.bar.dataset.updates = String(Number(this.bar.dataset.updates || 0) + 1);
    this.bar.dataset.last = String(fraction);
    this.text.textContent = line;
  }

  done(line) {
    this.bar.value = 1;
    this.box.dataset.state = 'done';
    this.text.textContent = line;
  }

  fail(line) {
    this.box.dataset.state = 'failed';
    this.text.textContent = line;
  }

  hide() {
    this.box.hidden = true;
  }
}

// progressLine describes one progress report of the API: records for
// exports and imports, bytes for node backups.
export function progressLine(p) {
  const pct = (f) => `${Math.floor(f * 100)}%`;
  switch (p.phase) {
    case 'backup':
      return [p.total ? p.done / p.total : null, `Writing backup: ${bytes(p.done)} of ${bytes(p.total)}` +
        (p.total ? ` (${pct(p.done / p.total)})` : '')];
    case 'commit':
      return [p.done ? 1 : 0.99, p.done ? 'Committed' : 'Committing (one raft entry)…'];
    default: {
      const name = { export: 'Exporting', validate: 'Checking', stage: 'Staging' }[p.phase] || p.phase;
      if (p.total) return [p.done / p.total, `${name}: ${p.done} of ${p.total} records (${pct(p.done / p.total)})`];
      if (p.bytes_total) return [p.bytes / p.bytes_total, `${name}: ${p.done} records, ${pct(p.bytes / p.bytes_total)} of the file`];
      return [null, `${name}: ${p.done} records`];
    }
  }
}
