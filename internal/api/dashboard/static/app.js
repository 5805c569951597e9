// The dashboard's entry: the login form, and a hash router over the
// pages (#/status, #/backups). Without a token every page shows the
// login form; a 401 from any call brings it back.

import { login, session } from './api.js';
import { $, showError } from './ui.js';
import * as status from './status.js';
import * as backups from './backups.js';

const pages = { status, backups };
let current = null;

function route() {
  const name = (location.hash.replace(/^#\/?/, '') || 'status').split('?')[0];
  if (!session.token()) return showLogin();
  const page = pages[name] ? name : 'status';
  $('page-login').hidden = true;
  $('nav').hidden = false;
  $('who').hidden = false;
  $('who').textContent = session.user() || '';
  $('logout').hidden = false;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (current && current !== page) {
    pages[current].hide();
    $('page-' + current).hidden = true;
  }
  $('page-' + page).hidden = false;
  document.title = `${page === 'status' ? 'Status' : 'Backup & Restore'} · Roost`;
  current = page;
  pages[page].show();
}

function showLogin(err) {
  if (current) {
    pages[current].hide();
    $('page-' + current).hidden = true;
    current = null;
  }
  $('nav').hidden = true;
  $('who').hidden = true;
  $('logout').hidden = true;
  $('page-login').hidden = false;
  document.title = 'Log in · Roost';
  showError('login-error', err || null);
  $('login-password').focus();
}

async function onLogin(e) {
  e.preventDefault();
  const btn = $('login-submit');
  btn.disabled = true;
  showError('login-error', null);
  try {
    await login($('login-username').value.trim(), $('login-password').value);
    $('login-password').value = '';
    if (!location.hash || location.hash === '#/login') location.hash = '#/status';
    else route();
  } catch (err) {
    showError('login-error', err);
    $('login-password').select();
  } finally {
    btn.disabled = false;
  }
}

function init() {
  status.init();
  backups.init();
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', () => {
    session.clear();
    showLogin();
  });
  // The API's own words say why (expired, revoked).
  window.addEventListener('roost:unauthorized', (e) => showLogin(e.detail));
  window.addEventListener('hashchange', route);
  route();
}

init();
