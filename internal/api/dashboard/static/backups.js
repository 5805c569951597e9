// The Backup & Restore page: node backups and data exports (on this node
// and at the remote target), creating them with a progress bar,
// downloading, and importing an uploaded export after a dry run.

import { call, stream, importFile, download, remoteList } from './api.js';
import { $, el, showError, bytes, time, Job, progressLine } from './ui.js';

const backupJob = () => new Job('backup');
const exportJob = () => new Job('export');
const importJob = () => new Job('import');

// pending is the file whose dry run is shown, waiting for Confirm.
let pending = null;
// running holds the jobs under way (backup, export, import): one of each
// at a time on this page; the node refuses a second backup or import
// from anywhere else.
const running = new Set();

export function init() {
  $('backups-refresh').addEventListener('click', () => refresh());
  $('backup-form').addEventListener('submit', (e) => { e.preventDefault(); createBackup(); });
  $('export-form').addEventListener('submit', (e) => { e.preventDefault(); createExport(); });
  $('upload-form').addEventListener('submit', (e) => { e.preventDefault(); uploadAndCheck(); });
  $('import-confirm').addEventListener('click', () => confirmImport());
  $('import-cancel').addEventListener('click', () => cancelImport());
  $('import-replace').addEventListener('change', () => { if (pending) dryRun(pending.file || pending.filename); });
}

export function show() {
  refresh();
}

export function hide() {}

async function refresh() {
  const page = $('page-backups');
  try {
    const [b, files] = await Promise.all([call('GET', '/api/v1/backups'), call('GET', '/api/v1/data/files')]);
    showError('backups-error', null);
    renderBackups(b.backups || []);
    renderExports(files.data || []);
    $('backup-schedule').textContent = scheduleLine(b.schedule);
    page.dataset.loaded = 'true';
  } catch (e) {
    if (e.status !== 401) showError('backups-error', e);
  }
  renderRemote('backups', $('backups-remote'), backupRow);
  renderRemote('exports', $('exports-remote'), exportRow);
}

async function renderRemote(which, box, row) {
  box.replaceChildren(el('p', { class: 'hint' }, 'Asking the node…'));
  try {
    const r = await remoteList(which);
    if (!r) {
      box.replaceChildren(el('p', { class: 'empty', dataset: { remote: 'none' } }, 'No remote target configured.'));
      return;
    }
    const tbody = el('tbody', {}, r.items.length ? r.items.map((f) => row(f, r.target)) : emptyRow('Nothing at the target yet.'));
    box.replaceChildren(el('p', { class: 'hint' }, 'Target: ', el('code', {}, r.target)),
      el('table', { class: 'list' }, headRow(), tbody));
  } catch (e) {
    if (e.status === 401) return;
    const err = el('div', { class: 'error', role: 'alert' });
    showError(err, e);
    box.replaceChildren(el('p', { class: 'hint' }, 'The remote listing failed:'), err);
  }
}

// scheduleLine sums up the scheduled backups in one sentence.
function scheduleLine(s) {
  if (!s || !s.enabled) return 'Scheduled backups: off (backup.interval = 0).';
  let line = `Scheduled backups: every ${s.interval}, keeping ${s.keep ? 'the newest ' + s.keep : 'all'}; next ${time(s.next_at)}`;
  line += s.last_success ? `; last ${time(s.last_success)} (${s.last_file})` : '; none made yet';
  if (s.last_error) line += `; last failure ${time(s.last_error_at)}: ${s.last_error}`;
  return line + '.';
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many || one + 's'}`;

function headRow() {
  return el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Name'), el('th', { scope: 'col', class: 'num' }, 'Size'),
    el('th', { scope: 'col' }, 'Time'), el('th', { scope: 'col' }, 'Kind'), el('th', { scope: 'col' }, el('span', { class: 'sr' }, 'Actions'))));
}

function emptyRow(text) {
  return el('tr', {}, el('td', { colspan: 5, class: 'empty' }, text));
}

function renderBackups(list) {
  const rows = [...list].sort((a, b) => (b.modified_at || '').localeCompare(a.modified_at || ''));
  $('backups-local').replaceChildren(...(rows.length ? rows.map((b) => backupRow(b, false)) : [emptyRow('No node backups yet.')]));
}

// backupRow is one node backup; remote is the target it is at (its
// location) for a remote listing, else empty.
function backupRow(b, remote) {
  const kind = [b.scheduled ? 'scheduled' : 'on request', b.encrypted ? 'encrypted' : null].filter(Boolean).join(', ');
  const path = '/api/v1/backups/' + encodeURIComponent(b.name) + (remote ? '?remote=true' : '');
  return el('tr', { dataset: { name: b.name } },
    el('td', { class: 'mono name' }, b.name), el('td', { class: 'num' }, bytes(b.size)), el('td', {}, time(b.modified_at)),
    el('td', {}, kind), el('td', { class: 'actions' }, [downloadButton(path, b.name), remote ? null : deleteButton(path, b.name)]));
}

function renderExports(list) {
  const rows = [...list].sort((a, b) => (b.modified_at || '').localeCompare(a.modified_at || ''));
  $('exports-local').replaceChildren(...(rows.length ? rows.map((f) => exportRow(f, false)) : [emptyRow('No data exports yet.')]));
}

// fileKind names what a file of the backup dir probably is, by its name.
function fileKind(name) {
  const gz = name.endsWith('.gz');
  if (name.startsWith('roost-export-')) return gz ? 'export (gzip)' : 'export';
  if (name.endsWith('.json') || name.endsWith('.json.gz')) return gz ? 'JSON file (gzip)' : 'JSON file';
  return 'file';
}

// exportRow is one export file; remote as for backupRow. An export at an
// S3 target is imported from there (the node reads it, keeping no copy).
function exportRow(f, remote) {
  const path = '/api/v1/data/files/' + encodeURIComponent(f.name) + (remote ? '?remote=true' : '');
  const source = remote ? (remote.startsWith('s3://') ? remote.replace(/\/+$/, '') + '/' + f.name : null) : f.name;
  return el('tr', { dataset: { name: f.name } },
    el('td', { class: 'mono name' }, f.name), el('td', { class: 'num' }, bytes(f.size)), el('td', {}, time(f.modified_at)),
    el('td', {}, fileKind(f.name)),
    el('td', { class: 'actions' }, [
      downloadButton(path, f.name),
      source ? el('button', { type: 'button', class: 'quiet', 'aria-label': 'Import ' + f.name, dataset: { action: 'import' },
        onclick: () => { $('import-card').scrollIntoView({ block: 'start' }); dryRun(source); } }, 'Import…') : null,
      remote ? null : deleteButton(path, f.name),
    ]));
}

function downloadButton(path, name) {
  return el('button', { type: 'button', class: 'quiet', 'aria-label': 'Download ' + name, dataset: { action: 'download' },
    onclick: async (e) => {
      const btn = e.currentTarget;
      btn.disabled = true;
      btn.textContent = 'Downloading…';
      try {
        await download(path, name);
        showError('backups-error', null);
      } catch (err) {
        if (err.status !== 401) showError('backups-error', err);
      } finally {
        btn.disabled = false;
        btn.textContent = 'Download';
      }
    } }, 'Download');
}

// deleteButton asks twice: the first click arms it for 5 s.
function deleteButton(path, name) {
  let armed = null;
  return el('button', { type: 'button', class: 'quiet danger', 'aria-label': 'Delete ' + name, dataset: { action: 'delete' },
    onclick: async (e) => {
      const btn = e.currentTarget;
      if (!armed) {
        btn.textContent = 'Really delete?';
        armed = setTimeout(() => { armed = null; btn.textContent = 'Delete'; }, 5000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      try {
        await call('DELETE', path);
        showError('backups-error', null);
      } catch (err) {
        if (err.status !== 401) showError('backups-error', err);
      }
      refresh();
    } }, 'Delete');
}

async function runJob(job, errBox, button, label, fn) {
  const key = job.box.id;
  if (running.has(key)) return;
  running.add(key);
  button.disabled = true;
  showError(errBox, null);
  job.start(label);
  try {
    await fn();
  } catch (e) {
    job.fail('Failed (see below).');
    if (e.status !== 401) showError(errBox, e);
  } finally {
    running.delete(key);
    button.disabled = false;
  }
}

function createBackup() {
  const job = backupJob();
  const name = $('backup-name').value.trim();
  return runJob(job, 'backup-error', $('backup-create'), 'Starting the backup…', async () => {
    const res = await stream('/api/v1/backups', name ? { name } : {}, (p) => job.update(...progressLine(p)));
    job.done(`Done: ${res.name}, ${bytes(res.size)}, raft index ${res.raft_index}, in ${res.duration_ms} ms.`);
    $('backup-name').value = '';
    await refresh();
  });
}

function createExport() {
  const job = exportJob();
  const filename = $('export-name').value.trim();
  return runJob(job, 'export-error', $('export-create'), 'Starting the export…', async () => {
    const res = await stream('/api/v1/data/export', filename ? { filename } : {}, (p) => job.update(...progressLine(p)));
    job.done(`Done: ${res.filename}, ${bytes(res.size)}, ${plural(res.records, 'record')} at raft index ${res.raft_index}.`);
    $('export-name').value = '';
    await refresh();
  });
}

// uploadAndCheck dry-runs a file chosen in this browser. The file goes
// with the request and the node keeps no copy (as roost ctl data import
// --dry-run FILE); Confirm sends it again with the real import.
function uploadAndCheck() {
  const input = $('upload-file');
  const file = input.files && input.files[0];
  if (!file) return;
  input.value = '';
  return dryRun(file);
}

// dryRun shows what importing source would change: a File from this
// browser, or the name of a file in the node's backup dir.
function dryRun(source) {
  const job = importJob();
  const replace = $('import-replace').checked;
  const label = typeof source === 'string' ? source : source.name;
  hideReport();
  return runJob(job, 'import-error', $('upload-submit'), `Dry run of ${label}…`, async () => {
    const rep = await runImport(source, { dry_run: true, replace }, job);
    job.done(`Dry run of ${label} done: nothing has changed yet.`);
    pending = typeof source === 'string' ? { filename: source, replace } : { file: source, filename: label, replace };
    renderReport(rep, true, label);
  });
}

function runImport(source, options, job) {
  const onProgress = (p) => job.update(...progressLine(p));
  if (typeof source === 'string') return stream('/api/v1/data/import', Object.assign({ filename: source }, options), onProgress);
  return importFile(source, options, onProgress);
}

function confirmImport() {
  if (!pending) return;
  const { file, filename, replace } = pending;
  const job = importJob();
  $('import-confirm').disabled = true;
  return runJob(job, 'import-error', $('import-confirm'), `Importing ${filename}…`, async () => {
    const rep = await runImport(file || filename, { replace }, job);
    pending = null;
    job.done(`Imported ${filename}: committed at raft index ${rep.raft_index}.`);
    renderReport(rep, false, filename);
  });
}

function cancelImport() {
  pending = null;
  hideReport();
  importJob().hide();
}

function hideReport() {
  $('import-report').hidden = true;
  showError('import-error', null);
}

function totals(rep) {
  const t = { added: 0, changed: 0, unchanged: 0, removed: 0 };
  for (const r of rep.tables || []) for (const k of Object.keys(t)) t[k] += r[k] || 0;
  return t;
}

// renderReport shows an import's report; label names the file as the
// operator chose it (a name, an s3:// URL).
function renderReport(rep, dry, label) {
  const name = label || rep.file;
  const box = $('import-report');
  box.dataset.dryRun = String(dry);
  $('import-report-title').textContent = dry ? `Dry run: what importing ${name} would change` : `Imported ${name}`;
  const t = totals(rep);
  const src = rep.source ? `, from node ${rep.source.source_node || '?'} of cluster ${rep.source.cluster_id || '?'} at raft index ${rep.source.raft_index}` : '';
  const change = dry ? `${t.added} to add, ${t.changed} to change, ${t.removed} to remove, ${t.unchanged} unchanged`
    : `${t.added} added, ${t.changed} changed, ${t.removed} removed, ${t.unchanged} unchanged`;
  $('import-summary').textContent = `${rep.format}${rep.version ? ' v' + rep.version : ''}${src}; mode ${rep.mode}. ` +
    (dry ? `Would change: ${change}.` : `Records: ${change}.`);
  const sign = (n, s) => (n ? `${s}${n}` : '0');
  $('import-tables').replaceChildren(...(rep.tables || []).map((r) => el('tr', { dataset: { table: r.table } },
    el('th', { scope: 'row' }, r.table),
    el('td', { class: 'num' }, r.records),
    el('td', { class: 'num' + (r.added ? ' add' : ''), dataset: { col: 'added' } }, sign(r.added, '+')),
    el('td', { class: 'num' + (r.changed ? ' chg' : ''), dataset: { col: 'changed' } }, sign(r.changed, '~')),
    el('td', { class: 'num', dataset: { col: 'unchanged' } }, r.unchanged),
    el('td', { class: 'num' + (r.removed ? ' del' : ''), dataset: { col: 'removed' } }, sign(r.removed, '−')),
    el('td', {}, r.skipped || ''),
  )));
  const notes = [...(rep.notes || []), ...(rep.skipped || []).map((s) => 'skipped: ' + s)];
  for (const c of rep.config_files || []) notes.push(`config file ${c.path}: ${c.status}${c.error ? ': ' + c.error : ''}`);
  $('import-notes').replaceChildren(...notes.map((n) => el('li', {}, n)));
  $('import-actions').hidden = !dry;
  $('import-confirm').disabled = !dry;
  box.hidden = false;
}
