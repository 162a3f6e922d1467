// The API's private part (the snapshot, findings, alarms, journal) answers
// root's own loopback connections, and anyone else who sends picket's
// token. authFetch is fetch with that token: asked for once when the
// server answers 401, kept in sessionStorage (this tab only, gone when it
// closes; never localStorage, never the URL, so no history, bookmark,
// Referer or server log ever holds it) and sent as "Authorization: Bearer".

const KEY = 'picket.token';

function stored() {
  try {
    return sessionStorage.getItem(KEY) || '';
  } catch {
    return ''; // storage off: ask again on every load
  }
}

// authFetch is fetch(path, init) with the token, when one was given. A 401
// asks for it (again, when the one sent was wrong); the caller gets the
// 401 as it is and shows the server's message meanwhile.
export async function authFetch(path, init = {}) {
  const token = stored();
  const headers = new Headers(init.headers || {});
  if (token) headers.set('Authorization', 'Bearer ' + token);
  const r = await fetch(path, { ...init, headers });
  if (r.status === 401) {
    const wrong = /invalid_token/.test(r.headers.get('WWW-Authenticate') || '');
    if (wrong) forget();
    ask(wrong ? 'That token is wrong.' : null);
  }
  return r;
}

function forget() {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // nothing kept
  }
}

// ask shows the token form at the top of the page, once however many
// requests were refused.
function ask(problem) {
  let form = document.getElementById('token-form');
  if (!form) {
    form = build();
    form.hidden = true;
    document.body.insertBefore(form, document.body.firstChild);
  }
  const p = form.querySelector('.token-problem');
  p.textContent = problem || '';
  p.hidden = !problem;
  if (form.hidden) {
    form.hidden = false;
    form.querySelector('input').focus();
  }
}

function build() {
  const form = document.createElement('form');
  form.id = 'token-form';
  form.className = 'token-form';
  form.autocomplete = 'off';
  const label = document.createElement('label');
  label.htmlFor = 'token-input';
  label.textContent = "This picket shows processes, sockets and actions to root on its host and to whoever has its token. Token (picket run's --token-file):";
  const input = document.createElement('input');
  input.id = 'token-input';
  input.type = 'password';
  input.name = 'token';
  input.autocomplete = 'off';
  input.spellcheck = false;
  input.required = true;
  const button = document.createElement('button');
  button.type = 'submit';
  button.textContent = 'Show';
  const problem = document.createElement('p');
  problem.className = 'token-problem';
  problem.hidden = true;
  form.append(label, input, button, problem);
  form.addEventListener('submit', (e) => {
    // Never submitted: the token would travel in the URL.
    e.preventDefault();
    const v = input.value.trim();
    if (!v) return;
    try {
      sessionStorage.setItem(KEY, v);
    } catch {
      problem.textContent = 'This browser keeps nothing for the tab (storage is off), so the token cannot be used.';
      problem.hidden = false;
      return;
    }
    input.value = '';
    form.hidden = true;
    // Every table and plot starts over with the token.
    location.reload();
  });
  return form;
}
