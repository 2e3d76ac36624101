// The Lethe operator console. Preact + htm (vendored, no build step); every call goes to
// Lethe's public REST API with the bearer token the person pasted, kept in session storage
// only. What a role cannot do is hidden here and refused by the API anyway.
import { h, render } from './vendor/preact.js';
import { useState, useEffect, useRef, useCallback } from './vendor/hooks.js';
import htm from './vendor/htm.js';

const html = htm.bind(h);
const TOKEN_KEY = 'lethe.token';
const ACTIVE = ['queued', 'finding', 'forgetting', 'verifying', 'cleaning_up'];

// ---------------------------------------------------------------- API

/** A problem document (RFC 9457) from the API, or one made up for a network failure. */
class Problem extends Error {
  constructor(doc) {
    super(doc.title || 'The request failed');
    this.doc = doc;
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

async function send(method, path, body, extraHeaders = {}) {
  const headers = { Authorization: `Bearer ${token()}`, ...extraHeaders };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    return await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new Problem({
      title: 'Lethe cannot be reached',
      detail: 'The request got no answer. Check your connection and try again.',
    });
  }
}

async function api(method, path, body) {
  const res = await send(method, path, body);
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  const data = type.includes('json') ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) {
    throw new Problem(data && typeof data === 'object'
      ? data
      : { title: 'The request failed', detail: 'Lethe answered without a problem document.' });
  }
  return data;
}

const get = (path) => api('GET', path);
const enc = encodeURIComponent;

/** Loads `fn()` when `deps` change; `reload()` loads again. */
function useLoad(fn, deps) {
  const [state, setState] = useState({ loading: true, data: null, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => live && setState({ loading: false, data, error: null }),
      (error) => live && setState({ loading: false, data: null, error }),
    );
    return () => { live = false; };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

// ---------------------------------------------------------------- small pieces

function ProblemBox({ error }) {
  if (!error) return null;
  const doc = error.doc || { title: 'Something went wrong', detail: String(error.message || '') };
  return html`<div class="problem" role="alert">
    <h3>${doc.title}</h3>
    ${doc.detail && html`<p>${doc.detail}</p>`}
    ${doc.errors && doc.errors.length > 0 && html`<ul>${doc.errors.map((e) =>
      html`<li><code>${e.field}</code>: ${e.message}</li>`)}</ul>`}
  </div>`;
}

/** Field messages of a 422 for `name` (the field itself or its `[i]` / `.x` children). */
function fieldErrors(error, name) {
  const errors = (error && error.doc && error.doc.errors) || [];
  return errors.filter((e) => e.field === name || e.field.startsWith(`${name}[`)
    || e.field.startsWith(`${name}.`));
}

function FieldError({ error, name, id }) {
  const errors = fieldErrors(error, name);
  if (errors.length === 0) return null;
  return html`<div class="field-error" id=${id} role="alert">
    ${errors.map((e) => html`<div>${e.message}${e.field !== name ? ` (${e.field})` : ''}</div>`)}
  </div>`;
}

function Loading({ what }) {
  return html`<p class="loading" aria-live="polite">Loading ${what}…</p>`;
}

const when = (t) => (t ? new Date(t).toLocaleString() : '—');
const days = (t) => (t ? Math.floor((Date.now() - new Date(t).getTime()) / 86400000) : null);
// UUIDv7s share their leading (time) digits: the tail tells them apart.
const short = (id) => `…${String(id).slice(-8)}`;

function Status({ status }) {
  return html`<span class=${`status status-${status}`}>${status.replaceAll('_', ' ')}</span>`;
}

function Copy({ text }) {
  const [done, setDone] = useState(false);
  return html`<button type="button" class="secondary" onClick=${async () => {
    await navigator.clipboard.writeText(text).catch(() => {});
    setDone(true);
    setTimeout(() => setDone(false), 1500);
  }}>${done ? 'Copied' : 'Copy'}</button>`;
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function Progress({ label, done, total }) {
  const pct = total > 0 ? Math.min(100, Math.round((100 * done) / total)) : 0;
  return html`<div class="progress">
    <div><strong>${label}</strong> <span data-progress=${label}>${done} of ${total}</span></div>
    <div class="bar" role="progressbar" aria-label=${label} aria-valuemin="0"
      aria-valuemax=${total} aria-valuenow=${done}><span style=${{ width: `${pct}%` }}></span></div>
  </div>`;
}

// ---------------------------------------------------------------- routing

function useHash() {
  const [hash, setHash] = useState(location.hash || '#/');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

const go = (hash) => { location.hash = hash; };

/** The segments of a route in the URL hash, decoded (null when one cannot be). Anyone can
 * craft the link: a segment is a value, and goes into an API path only through `enc`. */
function routeOf(hash) {
  try {
    return hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  } catch (e) {
    return null;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Job ids are UUIDs; nothing else from the URL is taken for one. */
const isJobId = (value) => UUID.test(value);

// ---------------------------------------------------------------- sign-in and layout

function SignIn({ onSignedIn, error: initial }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState(initial || null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    sessionStorage.setItem(TOKEN_KEY, value.trim());
    try {
      onSignedIn(await get('/v1/me'));
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>Sign in to Lethe</h1>
    <p>Paste a bearer token from your identity provider (or <code>lethe token</code>). It is
      kept in this tab's session storage only and sent to this server's API, nowhere else.</p>
    <form onSubmit=${submit}>
      <div class="field">
        <label for="token">Bearer token</label>
        <textarea id="token" name="token" autocomplete="off" spellcheck="false"
          value=${value} onInput=${(e) => setValue(e.target.value)} required></textarea>
      </div>
      <${ProblemBox} error=${error} />
      <div class="actions"><button type="submit" disabled=${busy || !value.trim()}>Sign in</button></div>
    </form>
  </main>`;
}

const PAGES = [
  { hash: '#/', label: 'Dashboard', needs: null },
  { hash: '#/mappers', label: 'Data mappers', needs: 'data_mapper_read' },
  { hash: '#/queue', label: 'Deletion queue', needs: 'queue_read' },
  { hash: '#/jobs', label: 'Jobs', needs: 'job_read' },
  { hash: '#/governance', label: 'Governance', needs: 'governance_read' },
  { hash: '#/audit', label: 'Audit', needs: 'audit_read' },
];

function Layout({ me, onSignOut, children, hash }) {
  const can = (a) => !a || me.actions.includes(a);
  const current = PAGES.filter((p) => p.hash !== '#/' && hash.startsWith(p.hash))[0] || PAGES[0];
  return html`<div>
    <header class="top">
      <span class="brand">Lethe</span>
      <nav aria-label="Main"><ul>
        ${PAGES.filter((p) => can(p.needs)).map((p) => html`<li>
          <a href=${p.hash} aria-current=${p === current ? 'page' : undefined}>${p.label}</a></li>`)}
      </ul></nav>
      <div class="who">
        <span>Signed in as <strong data-subject>${me.subject}</strong></span>
        <span>${me.roles.length === 0 ? html`<span class="role">no Lethe role</span>`
          : me.roles.map((r) => html`<span class="role">${r}</span> `)}</span>
        <button type="button" class="secondary" onClick=${onSignOut}>Sign out</button>
      </div>
    </header>
    <main>${children}</main>
  </div>`;
}

// ---------------------------------------------------------------- dashboard

function Dashboard({ me }) {
  const can = (a) => me.actions.includes(a);
  const summary = useLoad(() => (can('queue_read') ? get('/v1/queue/summary') : Promise.resolve(null)), []);
  const jobs = useLoad(() => (can('job_read') ? get('/v1/jobs?page_size=5') : Promise.resolve(null)), []);
  // No reconciliation yet is a 404: shown as "not checked yet", not as a problem.
  const drift = useLoad(() => (can('governance_read')
    ? get('/v1/access_policies/drift').catch((e) => {
      if (e.doc && e.doc.status === 404) return { checked_at: null };
      throw e;
    })
    : Promise.resolve(null)), []);
  const running = jobs.data && jobs.data.jobs.find((j) => ACTIVE.includes(j.status));
  const last = jobs.data && jobs.data.jobs[0];
  const s = summary.data;
  return html`<section>
    <h1>Dashboard</h1>
    <${ProblemBox} error=${summary.error || jobs.error || drift.error} />
    ${s && html`<div class="cards">
      <div class="card"><div class="value" data-card="queue">${s.items}</div><div class="label"><a href="#/queue">queued subjects</a></div></div>
      <div class="card"><div class="value">${s.oldest_created_at ? `${days(s.oldest_created_at)} d` : '—'}</div><div class="label">since the oldest was queued</div></div>
      <div class=${`card ${s.overdue > 0 ? 'overdue' : ''}`}><div class="value">${s.overdue}</div><div class="label">past their deadline</div></div>
      <div class=${`card ${s.due_within_day > 0 ? 'soon' : ''}`}><div class="value">${s.due_within_day}</div><div class="label">due within a day</div></div>
      ${jobs.data && html`<div class="card"><div class="value">${last ? `${days(last.created_at)} d` : '—'}</div><div class="label">since the last job</div></div>`}
    </div>`}
    ${running && html`<h2>Running job</h2><${JobProgress} jobId=${running.job_id} />`}
    ${jobs.data && html`<h2>Last jobs</h2><${JobTable} jobs=${jobs.data.jobs} />
      <p><a href="#/jobs">All jobs</a></p>`}
    ${drift.data && html`<h2>Lake Formation drift</h2>
      <p>${drift.data.checked_at ? html`${drift.data.drifted_grants} grant(s) differ from the declaration (checked ${when(drift.data.checked_at)}).` : 'Not checked yet.'}
      ${' '}<a href="#/governance">Governance</a></p>`}
  </section>`;
}

// ---------------------------------------------------------------- data mappers

function catalogText(c) {
  return c.provider === 'glue' ? `Glue ${c.database}.${c.table}` : c.location;
}

function Mappers({ me }) {
  const list = useLoad(() => get('/v1/data_mappers?page_size=1000'), []);
  return html`<section>
    <h1>Data mappers</h1>
    ${me.actions.includes('data_mapper_write') && html`<div class="actions"><a class="button" href="#/mappers/new">New data mapper</a></div>`}
    <${ProblemBox} error=${list.error} />
    ${list.loading && html`<${Loading} what="data mappers" />`}
    ${list.data && html`<div class="table-wrap"><table>
      <thead><tr><th>Id</th><th>Table</th><th>Format</th><th>Match columns</th></tr></thead>
      <tbody>${list.data.data_mappers.map((m) => html`<tr>
        <td><a href=${`#/mappers/${enc(m.data_mapper_id)}`}>${m.data_mapper_id}</a></td>
        <td class="mono">${catalogText(m.catalog)}</td><td>${m.format}</td>
        <td>${m.columns.join(', ')}</td></tr>`)}</tbody></table></div>
      ${list.data.data_mappers.length === 0 && html`<p>No data mapper yet.</p>`}`}
  </section>`;
}

function MapperDetail({ me, id }) {
  const mapper = useLoad(() => get(`/v1/data_mappers/${enc(id)}`), [id]);
  const policy = useLoad(() => get(`/v1/data_mappers/${enc(id)}/access_policy`), [id]);
  const [error, setError] = useState(null);
  const remove = async () => {
    if (!confirm(`Delete data mapper ${id}?`)) return;
    try {
      await api('DELETE', `/v1/data_mappers/${enc(id)}`);
      go('#/mappers');
    } catch (e) { setError(e); }
  };
  const m = mapper.data;
  return html`<section>
    <h1>Data mapper <code>${id}</code></h1>
    <${ProblemBox} error=${mapper.error || error} />
    ${m && html`<table><tbody>
      <tr><th>Table</th><td class="mono">${catalogText(m.catalog)}</td></tr>
      <tr><th>Format</th><td>${m.format}</td></tr>
      <tr><th>Match columns</th><td>${m.columns.map((c) => html`<code>${c}</code>${m.column_types[c] ? ` (${m.column_types[c]})` : ''} `)}</td></tr>
      <tr><th>Partition keys</th><td>${m.partition_keys.join(', ') || '—'}</td></tr>
      <tr><th>Role</th><td class="mono">${m.role_arn || 'Lethe’s own'}</td></tr>
      <tr><th>Options</th><td>${['delete_old_versions', 'ignore_object_not_found', 'allow_unversioned', 'skip_archived'].filter((k) => m[k]).join(', ') || '—'}</td></tr>
      <tr><th>Updated</th><td>${when(m.updated_at)} by ${m.updated_by}</td></tr>
    </tbody></table>
    ${me.actions.includes('data_mapper_write') && html`<div class="actions">
      <a class="button" href=${`#/mappers/${enc(id)}/edit`}>Edit</a>
      <button type="button" class="danger" onClick=${remove}>Delete</button></div>`}`}
    <h2>Access policies</h2>
    ${policy.error && html`<p class="muted">${policy.error.doc.title}: ${policy.error.doc.detail}</p>`}
    ${policy.data && ['iam_policy', 'lethe_policy', 'trust_policy', 'bucket_policy'].filter((k) => policy.data[k]).map((k) => {
      const text = JSON.stringify(policy.data[k], null, 2);
      return html`<h3>${k.replace('_', ' ')}</h3><div class="actions"><${Copy} text=${text} /></div><pre>${text}</pre>`;
    })}
  </section>`;
}

const OPTIONS = [
  ['delete_old_versions', 'Delete the old versions of rewritten objects'],
  ['ignore_object_not_found', 'Ignore objects deleted while a job runs'],
  ['allow_unversioned', 'Allow buckets without versioning (no undo)'],
  ['skip_archived', 'Treat archived objects as out of scope'],
];

function MapperForm({ me, id }) {
  const editing = Boolean(id);
  const existing = useLoad(() => (editing ? get(`/v1/data_mappers/${enc(id)}`) : Promise.resolve(null)), [id]);
  const [form, setForm] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const canBrowse = me.actions.includes('catalog_read');
  // After a refused save, the first field with a message gets the focus (and the view).
  useEffect(() => {
    const first = error && document.querySelector('form [aria-invalid="true"]');
    if (first) first.focus();
  }, [error]);
  useEffect(() => {
    if (existing.loading) return;
    const m = existing.data;
    setForm(m ? {
      id: m.data_mapper_id, provider: m.catalog.provider, database: m.catalog.database || '',
      table: m.catalog.table || '', location: m.catalog.location || '', pathFormat: m.catalog.format || m.format,
      pathKeys: (m.catalog.partition_keys || []).join(', '), format: m.format, columns: m.columns,
      partition_keys: m.partition_keys, role_arn: m.role_arn || '',
      delete_old_versions: m.delete_old_versions, ignore_object_not_found: m.ignore_object_not_found,
      allow_unversioned: m.allow_unversioned, skip_archived: m.skip_archived,
    } : {
      id: '', provider: canBrowse ? 'glue' : 'path', database: '', table: '', location: '', pathFormat: 'parquet',
      pathKeys: '', format: 'parquet', columns: [], partition_keys: [], role_arn: '',
      delete_old_versions: true, ignore_object_not_found: false, allow_unversioned: false, skip_archived: false,
    });
  }, [existing.loading]);
  const dbs = useLoad(() => (canBrowse ? get('/v1/glue/databases') : Promise.resolve(null)), []);
  const glue = form && form.provider === 'glue';
  const tables = useLoad(() => (glue && form.database ? get(`/v1/glue/databases/${enc(form.database)}/tables`) : Promise.resolve(null)), [glue, form && form.database]);
  const table = useLoad(() => (glue && form.database && form.table
    ? get(`/v1/glue/databases/${enc(form.database)}/tables/${enc(form.table)}`) : Promise.resolve(null)),
  [glue, form && form.database, form && form.table]);
  useEffect(() => {
    if (table.data && table.data.format && !editing) setForm((f) => ({ ...f, format: table.data.format }));
  }, [table.data]);
  if (!form) return html`<${Loading} what="the data mapper" />`;
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.type === 'checkbox' ? e.target.checked : e.target.value });
  const toggle = (k, name) => (e) => setForm({
    ...form, [k]: e.target.checked ? [...form[k], name] : form[k].filter((c) => c !== name),
  });
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const catalog = glue
      ? { provider: 'glue', database: form.database, table: form.table }
      : {
        provider: 'path', location: form.location, format: form.pathFormat,
        partition_keys: form.pathKeys.split(',').map((s) => s.trim()).filter(Boolean),
      };
    const body = {
      catalog, format: glue ? form.format : form.pathFormat, columns: form.columns,
      partition_keys: glue ? form.partition_keys : catalog.partition_keys,
      role_arn: form.role_arn.trim() || null,
    };
    OPTIONS.forEach(([k]) => { body[k] = form[k]; });
    try {
      if (!form.id.trim()) throw new Problem({ title: 'The request has invalid fields', errors: [{ field: 'data_mapper_id', message: 'a data mapper needs an id' }] });
      await api('PUT', `/v1/data_mappers/${enc(form.id.trim())}`, body);
      go(`#/mappers/${enc(form.id.trim())}`);
    } catch (err) { setError(err); } finally { setBusy(false); }
  };
  const invalid = (name) => (fieldErrors(error, name).length > 0 ? 'true' : undefined);
  const columnChoices = table.data ? table.data.columns : [];
  return html`<section>
    <h1>${editing ? `Edit data mapper ${id}` : 'New data mapper'}</h1>
    <form onSubmit=${submit} noValidate>
      <div class="field"><label for="mapper-id">Id</label>
        <input id="mapper-id" type="text" value=${form.id} onInput=${set('id')} disabled=${editing}
          aria-invalid=${invalid('data_mapper_id')} aria-describedby="mapper-id-error" />
        <${FieldError} error=${error} name="data_mapper_id" id="mapper-id-error" /></div>
      <fieldset><legend>Where the table is described</legend>
        <div class="field inline"><input type="radio" id="prov-glue" name="provider" value="glue" checked=${glue} onChange=${set('provider')} disabled=${!canBrowse && !glue} /><label for="prov-glue">Glue table</label></div>
        <div class="field inline"><input type="radio" id="prov-path" name="provider" value="path" checked=${!glue} onChange=${set('provider')} /><label for="prov-path">S3 or local path</label></div>
        ${glue ? html`
          <div class="field"><label for="glue-db">Glue database</label>
            <select id="glue-db" value=${form.database} onChange=${(e) => setForm({ ...form, database: e.target.value, table: '', columns: [], partition_keys: [] })} aria-invalid=${invalid('catalog.database')}>
              <option value="">Choose a database</option>
              ${(dbs.data ? dbs.data.databases : []).map((d) => html`<option value=${d}>${d}</option>`)}
            </select><${FieldError} error=${error} name="catalog.database" /></div>
          <div class="field"><label for="glue-table">Glue table</label>
            <select id="glue-table" value=${form.table} onChange=${(e) => setForm({ ...form, table: e.target.value, columns: [], partition_keys: [] })} aria-invalid=${invalid('catalog.table')}>
              <option value="">Choose a table</option>
              ${(tables.data ? tables.data.tables : []).map((t) => html`<option value=${t}>${t}</option>`)}
            </select><${FieldError} error=${error} name="catalog.table" /></div>
          <${ProblemBox} error=${dbs.error || tables.error || table.error} />
          ${table.data && table.data.refused && html`<p class="problem">${table.data.refused}</p>`}
          ${table.data && html`<p class="muted mono">${table.data.location || 'no location'}</p>`}`
        : html`
          <div class="field"><label for="path-location">Location (<code>s3://bucket/prefix/</code> or <code>file:///path</code>)</label>
            <input id="path-location" type="text" value=${form.location} onInput=${set('location')} aria-invalid=${invalid('catalog.location')} aria-describedby="path-location-error" />
            <${FieldError} error=${error} name="catalog.location" id="path-location-error" /></div>
          <div class="field"><label for="path-format">Format</label>
            <select id="path-format" value=${form.pathFormat} onChange=${set('pathFormat')}>
              <option value="parquet">Parquet</option><option value="json">JSON Lines</option></select>
            <${FieldError} error=${error} name="catalog.format" /></div>
          <div class="field"><label for="path-keys">Partition keys (<code>key=value</code> folders, comma separated)</label>
            <input id="path-keys" type="text" value=${form.pathKeys} onInput=${set('pathKeys')} aria-invalid=${invalid('catalog.partition_keys')} />
            <${FieldError} error=${error} name="catalog.partition_keys" /></div>`}
      </fieldset>
      <fieldset><legend>Match columns</legend>
        ${glue && columnChoices.length > 0
          ? columnChoices.map((c) => html`<div class="field inline">
              <input type="checkbox" id=${`col-${c.name}`} checked=${form.columns.includes(c.name)} onChange=${toggle('columns', c.name)} />
              <label for=${`col-${c.name}`}><code>${c.name}</code> <span class="muted">${c.data_type}</span></label></div>`)
          : html`<div class="field"><label for="columns">Columns (comma separated; nested fields as <code>a.b</code>)</label>
              <input id="columns" type="text" value=${form.columns.join(', ')} aria-invalid=${invalid('columns')} aria-describedby="columns-error"
                onInput=${(e) => setForm({ ...form, columns: e.target.value.split(',').map((s) => s.trim()).filter(Boolean) })} /></div>`}
        <${FieldError} error=${error} name="columns" id="columns-error" />
        ${glue && table.data && table.data.partition_keys.length > 0 && html`<h3>Partition keys to prune on</h3>
          ${table.data.partition_keys.map((k) => html`<div class="field inline">
            <input type="checkbox" id=${`key-${k.name}`} checked=${form.partition_keys.includes(k.name)} onChange=${toggle('partition_keys', k.name)} />
            <label for=${`key-${k.name}`}><code>${k.name}</code> <span class="muted">${k.data_type || ''}</span></label></div>`)}
          <${FieldError} error=${error} name="partition_keys" />`}
      </fieldset>
      <fieldset><legend>Options</legend>
        ${OPTIONS.map(([k, label]) => html`<div class="field inline"><input type="checkbox" id=${`opt-${k}`} checked=${form[k]} onChange=${set(k)} /><label for=${`opt-${k}`}>${label}</label></div>`)}
        <div class="field"><label for="role-arn">Role to assume for S3 (cross-account; optional)</label>
          <input id="role-arn" type="text" value=${form.role_arn} onInput=${set('role_arn')} aria-invalid=${invalid('role_arn')} />
          <${FieldError} error=${error} name="role_arn" /></div>
      </fieldset>
      <${ProblemBox} error=${error} />
      <div class="actions"><button type="submit" disabled=${busy}>${busy ? 'Saving…' : 'Save data mapper'}</button>
        <a href=${editing ? `#/mappers/${enc(id)}` : '#/mappers'}>Cancel</a></div>
    </form>
  </section>`;
}

// ---------------------------------------------------------------- deletion queue

function parseIds(text) {
  return text.split(/\r?\n/).map((line) => {
    const first = line.split(',')[0].trim();
    return first.replace(/^"(.*)"$/, '$1');
  }).filter((id) => id && id.toLowerCase() !== 'match_id');
}

function QueueAdd({ mappers, onAdded }) {
  const [mode, setMode] = useState('simple');
  const [single, setSingle] = useState('');
  const [parts, setParts] = useState([{ column: '', value: '' }]);
  const [list, setList] = useState('');
  const [chosen, setChosen] = useState([]);
  const [deadline, setDeadline] = useState('');
  const [reference, setReference] = useState('');
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const common = {};
    if (chosen.length) common.data_mappers = chosen;
    if (deadline) common.deadline = new Date(deadline).toISOString();
    if (reference.trim()) common.reference = reference.trim();
    let matches;
    if (mode === 'simple') matches = [{ match_id: single.trim(), ...common }];
    else if (mode === 'composite') matches = [{ match_id: parts.map((p) => ({ column: p.column.trim(), value: p.value })), ...common }];
    else matches = parseIds(list).map((id) => ({ match_id: id, ...common }));
    setBusy(true);
    setError(null);
    try {
      const added = await api('PATCH', '/v1/queue/matches', { matches });
      setNotice(`${added.matches.length} subject(s) queued.`);
      setSingle(''); setList(''); setParts([{ column: '', value: '' }]);
      onAdded();
    } catch (err) { setError(err); setNotice(null); } finally { setBusy(false); }
  };
  const readFile = async (e) => {
    const file = e.target.files[0];
    if (file) setList(await file.text());
  };
  return html`<form onSubmit=${submit}><fieldset><legend>Queue subjects</legend>
    <div class="actions" role="radiogroup" aria-label="Kind of match">
      ${[['simple', 'One id'], ['composite', 'Composite (every column must match)'], ['list', 'A list or CSV of ids']].map(([k, label]) => html`
        <span class="field inline"><input type="radio" name="mode" id=${`mode-${k}`} checked=${mode === k} onChange=${() => setMode(k)} /><label for=${`mode-${k}`}>${label}</label></span>`)}
    </div>
    ${mode === 'simple' && html`<div class="field"><label for="match-id">Match id</label>
      <input id="match-id" type="text" value=${single} onInput=${(e) => setSingle(e.target.value)} aria-describedby="match-id-error" />
      <${FieldError} error=${error} name="matches[0].match_id" id="match-id-error" /></div>`}
    ${mode === 'composite' && html`<div>${parts.map((p, i) => html`<div class="actions">
        <span class="field"><label for=${`part-col-${i}`}>Column ${i + 1}</label><input id=${`part-col-${i}`} type="text" value=${p.column}
          onInput=${(e) => setParts(parts.map((q, j) => (j === i ? { ...q, column: e.target.value } : q)))} /></span>
        <span class="field"><label for=${`part-val-${i}`}>Value ${i + 1}</label><input id=${`part-val-${i}`} type="text" value=${p.value}
          onInput=${(e) => setParts(parts.map((q, j) => (j === i ? { ...q, value: e.target.value } : q)))} /></span>
        ${parts.length > 1 && html`<button type="button" class="secondary" onClick=${() => setParts(parts.filter((_, j) => j !== i))}>Remove</button>`}
      </div>`)}
      <button type="button" class="secondary" onClick=${() => setParts([...parts, { column: '', value: '' }])}>Add a column</button>
      <${FieldError} error=${error} name="matches[0].match_id" /></div>`}
    ${mode === 'list' && html`<div class="field"><label for="match-list">Ids, one per line (a CSV's first column; a <code>match_id</code> header is skipped)</label>
      <textarea id="match-list" value=${list} onInput=${(e) => setList(e.target.value)}></textarea></div>
      <div class="field"><label for="match-file">Or upload a CSV file</label><input id="match-file" type="file" accept=".csv,text/csv,text/plain" onChange=${readFile} /></div>
      <p class="muted">${parseIds(list).length} id(s) to queue</p>`}
    <fieldset><legend>Data mappers to search (none checked: all${mode === 'composite' ? '; a composite match names exactly one' : ''})</legend>
      ${mappers.map((m) => html`<span class="field inline"><input type="checkbox" id=${`qm-${m}`} checked=${chosen.includes(m)}
        onChange=${(e) => setChosen(e.target.checked ? [...chosen, m] : chosen.filter((x) => x !== m))} /><label for=${`qm-${m}`}>${m}</label></span>`)}
      <${FieldError} error=${error} name="matches[0].data_mappers" /></fieldset>
    <div class="field"><label for="deadline">Deadline (optional; default 30 days)</label>
      <input id="deadline" type="datetime-local" value=${deadline} onInput=${(e) => setDeadline(e.target.value)} /></div>
    <div class="field"><label for="reference">Reference (e.g. a ticket id; optional)</label>
      <input id="reference" type="text" value=${reference} onInput=${(e) => setReference(e.target.value)} /></div>
    <${ProblemBox} error=${error} />
    ${notice && html`<div class="notice" role="status">${notice}</div>`}
    <div class="actions"><button type="submit" disabled=${busy}>${busy ? 'Queueing…' : 'Queue'}</button></div>
  </fieldset></form>`;
}

function Queue({ me }) {
  const can = (a) => me.actions.includes(a);
  const [filter, setFilter] = useState({ mapper: '', before: '' });
  const [items, setItems] = useState([]);
  const [next, setNext] = useState(null);
  const [error, setError] = useState(null);
  const [selected, setSelected] = useState([]);
  const [version, setVersion] = useState(0);
  const mappers = useLoad(() => (can('data_mapper_read') ? get('/v1/data_mappers?page_size=1000') : Promise.resolve({ data_mappers: [] })), []);
  const query = (start) => {
    const q = new URLSearchParams({ page_size: '50' });
    if (filter.mapper) q.set('data_mapper', filter.mapper);
    if (filter.before) q.set('deadline_before', new Date(filter.before).toISOString());
    if (start) q.set('start_at', start);
    return `/v1/queue?${q}`;
  };
  useEffect(() => {
    get(query(null)).then((page) => { setItems(page.matches); setNext(page.next_start); setError(null); }, setError);
  }, [filter.mapper, filter.before, version]);
  const more = async () => {
    try {
      const page = await get(query(next));
      setItems([...items, ...page.matches]);
      setNext(page.next_start);
    } catch (e) { setError(e); }
  };
  const remove = async () => {
    const reason = prompt(`Remove ${selected.length} item(s) from the queue? They will not be erased.\nReason (recorded in the audit trail; required for items someone else queued):`);
    if (reason === null) return;
    const body = { matches: selected.map((id) => ({ deletion_queue_item_id: id })) };
    if (reason.trim()) body.reason = reason.trim();
    try {
      await api('DELETE', '/v1/queue/matches', body);
      setSelected([]);
      setVersion((v) => v + 1);
    } catch (e) { setError(e); }
  };
  const names = mappers.data ? mappers.data.data_mappers.map((m) => m.data_mapper_id) : [];
  const matchText = (item) => (item.match_id === null
    ? html`<span class="muted">hash ${item.match_hash.slice(0, 12)}…</span>`
    : (Array.isArray(item.match_id) ? item.match_id.map((p) => `${p.column} = ${p.value}`).join(' and ') : String(item.match_id)));
  return html`<section>
    <h1>Deletion queue</h1>
    ${can('queue_add') && html`<${QueueAdd} mappers=${names} onAdded=${() => setVersion((v) => v + 1)} />`}
    <h2>Queued</h2>
    <div class="actions">
      <span class="field"><label for="f-mapper">Data mapper</label><select id="f-mapper" value=${filter.mapper} onChange=${(e) => setFilter({ ...filter, mapper: e.target.value })}>
        <option value="">All</option>${names.map((n) => html`<option value=${n}>${n}</option>`)}</select></span>
      <span class="field"><label for="f-before">Deadline before</label><input id="f-before" type="datetime-local" value=${filter.before} onInput=${(e) => setFilter({ ...filter, before: e.target.value })} /></span>
    </div>
    <${ProblemBox} error=${error} />
    ${can('queue_delete') && html`<div class="actions"><button type="button" class="danger" disabled=${selected.length === 0} onClick=${remove}>Remove selected (${selected.length})</button></div>`}
    <div class="table-wrap"><table data-table="queue">
      <thead><tr>${can('queue_delete') && html`<th><span class="muted">Select</span></th>`}<th>Match</th><th>Type</th><th>Data mappers</th><th>Deadline</th><th>Queued</th><th>By</th></tr></thead>
      <tbody>${items.map((item) => {
        const overdue = new Date(item.deadline) < new Date();
        return html`<tr>
          ${can('queue_delete') && html`<td><input type="checkbox" aria-label=${`select item ${short(item.deletion_queue_item_id)}`} checked=${selected.includes(item.deletion_queue_item_id)}
            onChange=${(e) => setSelected(e.target.checked ? [...selected, item.deletion_queue_item_id] : selected.filter((x) => x !== item.deletion_queue_item_id))} /></td>`}
          <td class="mono">${matchText(item)}</td><td>${item.type}</td><td>${item.data_mappers.join(', ') || 'all'}</td>
          <td class=${overdue ? 'overdue' : ''}>${when(item.deadline)}</td><td>${when(item.created_at)}</td><td>${item.created_by}</td></tr>`;
      })}</tbody></table></div>
    ${items.length === 0 && html`<p>The queue is empty.</p>`}
    ${next && html`<div class="actions"><button type="button" class="secondary" onClick=${more}>Load more</button></div>`}
  </section>`;
}

// ---------------------------------------------------------------- jobs

function JobTable({ jobs }) {
  return html`<div class="table-wrap"><table data-table="jobs">
    <thead><tr><th>Job</th><th>Status</th><th>Kind</th><th>Trigger</th><th>Started by</th><th>Created</th><th>Finished</th><th>Rows removed</th></tr></thead>
    <tbody>${jobs.map((j) => html`<tr>
      <td><a href=${`#/jobs/${j.job_id}`} class="mono">${short(j.job_id)}</a></td><td><${Status} status=${j.status} /></td>
      <td>${j.dry_run ? 'dry run' : 'erasure'}</td><td>${j.trigger}</td><td>${j.created_by}</td>
      <td>${when(j.created_at)}</td><td>${when(j.finished_at)}</td><td>${j.stats.rows_removed}</td></tr>`)}</tbody>
  </table></div>`;
}

function Jobs({ me }) {
  const [jobs, setJobs] = useState([]);
  const [next, setNext] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    get('/v1/jobs?page_size=50').then((p) => { setJobs(p.jobs); setNext(p.next_start); }, setError);
  }, []);
  const more = () => get(`/v1/jobs?page_size=50&start_at=${enc(next)}`)
    .then((p) => { setJobs([...jobs, ...p.jobs]); setNext(p.next_start); }, setError);
  return html`<section>
    <h1>Jobs</h1>
    ${me.actions.includes('job_write') && html`<div class="actions"><a class="button" href="#/jobs/new">Start a job</a></div>`}
    <${ProblemBox} error=${error} />
    <${JobTable} jobs=${jobs} />
    ${jobs.length === 0 && html`<p>No job yet.</p>`}
    ${next && html`<div class="actions"><button type="button" class="secondary" onClick=${more}>Load more</button></div>`}
  </section>`;
}

function StartJob() {
  const mappers = useLoad(() => get('/v1/data_mappers?page_size=1000'), []);
  const [dryRun, setDryRun] = useState(true);
  const [chosen, setChosen] = useState([]);
  const [review, setReview] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const toReview = async (e) => {
    e.preventDefault();
    try {
      const [settings, summary] = await Promise.all([get('/v1/settings'), get('/v1/queue/summary')]);
      setReview({ settings, summary });
      setError(null);
    } catch (err) { setError(err); }
  };
  const start = async () => {
    setBusy(true);
    try {
      const job = await api('POST', '/v1/jobs', { dry_run: dryRun, data_mappers: chosen });
      go(`#/jobs/${job.job_id}`);
    } catch (err) { setError(err); } finally { setBusy(false); }
  };
  const names = mappers.data ? mappers.data.data_mappers.map((m) => m.data_mapper_id) : [];
  return html`<section>
    <h1>Start a job</h1>
    <form onSubmit=${toReview}>
      <div class="field inline"><input type="checkbox" id="dry-run" checked=${dryRun} onChange=${(e) => { setDryRun(e.target.checked); setReview(null); }} />
        <label for="dry-run">Dry run (find only: shows what would be erased, writes nothing)</label></div>
      <fieldset><legend>Data mappers (none checked: every mapper the queue applies to)</legend>
        ${names.map((m) => html`<span class="field inline"><input type="checkbox" id=${`jm-${m}`} checked=${chosen.includes(m)}
          onChange=${(e) => { setChosen(e.target.checked ? [...chosen, m] : chosen.filter((x) => x !== m)); setReview(null); }} /><label for=${`jm-${m}`}>${m}</label></span>`)}</fieldset>
      <div class="actions"><button type="submit" class="secondary">Review</button></div>
    </form>
    <${ProblemBox} error=${error || mappers.error} />
    ${review && html`<div data-review>
      <h2>Review</h2>
      <p>A <strong>${dryRun ? 'dry run' : 'real erasure'}</strong> over ${chosen.length ? chosen.join(', ') : 'every data mapper the queue applies to'},
        with the ${review.summary.items} queued subject(s) as they are when it starts.</p>
      <h3>Settings the job will keep</h3>
      <table><tbody>${['find_concurrency', 'multipart_threshold_bytes', 'report_retention_days', 'job_schedule'].map((k) => html`<tr><th>${k.replaceAll('_', ' ')}</th><td>${String(review.settings[k] ?? '—')}</td></tr>`)}</tbody></table>
      ${!dryRun && html`<p class="problem">Rows of these subjects will be removed from the lake and the old object versions deleted where the mappers say so.</p>`}
      <div class="actions"><button type="button" onClick=${start} disabled=${busy}>${busy ? 'Starting…' : (dryRun ? 'Start the dry run' : 'Start the erasure')}</button></div>
    </div>`}
  </section>`;
}

/** Follows a job's event stream (fetch, so the token goes in a header); resumes with
 * `Last-Event-ID` when a stream ends before the job does. */
function useJobStream(jobId, onEvent) {
  const handler = useRef(onEvent);
  handler.current = onEvent;
  useEffect(() => {
    const stop = new AbortController();
    (async () => {
      let last = null;
      while (!stop.signal.aborted) {
        const headers = { Authorization: `Bearer ${token()}`, Accept: 'text/event-stream' };
        if (last) headers['Last-Event-ID'] = last;
        let res;
        try {
          res = await fetch(`/v1/jobs/${enc(jobId)}/events`, { headers, signal: stop.signal });
        } catch (e) { if (stop.signal.aborted) return; await new Promise((r) => setTimeout(r, 2000)); continue; }
        if (!res.ok) { await new Promise((r) => setTimeout(r, 2000)); continue; }
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          let chunk;
          try { chunk = await reader.read(); } catch (e) { break; }
          if (chunk.done) break;
          buffer += chunk.value;
          let cut;
          while ((cut = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const fields = {};
            block.split('\n').forEach((line) => {
              const i = line.indexOf(':');
              if (i > 0) fields[line.slice(0, i)] = (fields[line.slice(0, i)] || '') + line.slice(i + 1).trimStart();
            });
            if (fields.id) last = fields.id;
            if (fields.data) { try { handler.current(JSON.parse(fields.data)); } catch (e) { /* keep-alive */ } }
          }
        }
        const job = await get(`/v1/jobs/${enc(jobId)}`).catch(() => null);
        if (job && !ACTIVE.includes(job.status)) { handler.current(null); return; }
      }
    })();
    return () => stop.abort();
  }, [jobId]);
}

function JobProgress({ jobId, onJob }) {
  const [job, setJob] = useState(null);
  const refresh = useCallback(() => get(`/v1/jobs/${enc(jobId)}`).then((j) => { setJob(j); if (onJob) onJob(j); }, () => {}), [jobId]);
  useEffect(() => { refresh(); }, [jobId]);
  const pending = useRef(null);
  useJobStream(jobId, () => {
    if (pending.current) return;
    pending.current = setTimeout(() => { pending.current = null; refresh(); }, 300);
  });
  if (!job) return html`<${Loading} what="the job" />`;
  const s = job.stats;
  const written = s.objects_rewritten + s.objects_unchanged + s.objects_forget_failed;
  return html`<div data-job-progress>
    <p>Status: <strong data-job-status>${job.status}</strong> ${job.dry_run ? '(dry run)' : ''}</p>
    <${Progress} label="Objects searched" done=${s.objects_scanned + s.objects_pruned + s.objects_failed + s.objects_not_searchable} total=${Math.max(s.objects_listed - s.objects_skipped, 0)} />
    <p>${s.objects_matched} object(s) hold matching rows (${s.rows_matched} rows).</p>
    ${!job.dry_run && html`
      <${Progress} label="Objects rewritten" done=${written} total=${s.objects_matched} />
      <${Progress} label="Objects verified" done=${s.objects_verified + s.objects_verify_failed} total=${s.objects_rewritten} />
      <p>Rows removed: <strong data-rows-removed>${s.rows_removed}</strong>; old versions deleted: ${s.versions_deleted}${s.cleanup_failures ? `; ${s.cleanup_failures} object(s) whose old versions could not all be deleted` : ''}.</p>`}
  </div>`;
}

function JobEvents({ jobId, live }) {
  const [events, setEvents] = useState([]);
  const [next, setNext] = useState(null);
  const [kind, setKind] = useState('');
  const [error, setError] = useState(null);
  const load = (start) => get(`/v1/jobs/${enc(jobId)}/events?page_size=50${start ? `&start_at=${enc(start)}` : ''}`)
    .then((p) => { setEvents((old) => merge(old, p.events)); setNext(p.next_start); }, setError);
  const merge = (old, more) => {
    const seen = new Set(old.map((e) => e.job_event_id));
    return [...old, ...more.filter((e) => !seen.has(e.job_event_id))].sort((a, b) => a.job_event_id - b.job_event_id);
  };
  useEffect(() => { load(null); }, [jobId, live]);
  const kinds = [...new Set(events.map((e) => e.kind))].sort();
  const shown = events.filter((e) => !kind || e.kind === kind);
  return html`<div>
    <div class="actions"><span class="field"><label for="event-kind">Event type</label>
      <select id="event-kind" value=${kind} onChange=${(e) => setKind(e.target.value)}><option value="">All</option>
        ${kinds.map((k) => html`<option value=${k}>${k}</option>`)}</select></span></div>
    <${ProblemBox} error=${error} />
    <div class="table-wrap"><table data-table="events"><thead><tr><th>#</th><th>When</th><th>Level</th><th>Type</th><th>Message</th></tr></thead>
      <tbody>${shown.map((e) => html`<tr><td>${e.job_event_id}</td><td>${when(e.created_at)}</td><td>${e.level}</td><td><code>${e.kind}</code></td><td>${e.message}</td></tr>`)}</tbody></table></div>
    ${next && html`<div class="actions"><button type="button" class="secondary" onClick=${() => load(next)}>Load more</button></div>`}
  </div>`;
}

function JobReport({ jobId }) {
  const [text, setText] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    send('GET', `/v1/jobs/${enc(jobId)}/report`).then(async (res) => {
      const body = await res.text();
      if (!res.ok) { try { throw new Problem(JSON.parse(body)); } catch (e) { setError(e); return; } }
      setText(body);
    }, setError);
  }, [jobId]);
  if (error) return html`<${ProblemBox} error=${error} />`;
  if (!text) return html`<${Loading} what="the report" />`;
  let report;
  try { report = JSON.parse(text); } catch (e) { return html`<${ProblemBox} error=${{ doc: { title: 'The report could not be read', detail: 'It ended early; download it to see what was sent.' } }} />`; }
  return html`<div data-report>
    <div class="actions"><button type="button" onClick=${() => download(`lethe-job-${jobId}.json`, text)}>Export the report (JSON)</button></div>
    <h3>Objects</h3>
    <div class="table-wrap"><table data-table="report-objects"><thead><tr><th>Key</th><th>Find</th><th>Forget</th><th>Rows before</th><th>Rows removed</th><th>Rows after</th><th>Old versions deleted</th></tr></thead>
      <tbody>${report.objects.map((o) => html`<tr><td class="mono">${o.key}</td><td>${o.find_status}</td><td>${o.status}${o.error ? `: ${o.error}` : ''}</td>
        <td>${o.rows_before ?? '—'}</td><td>${o.rows_removed ?? '—'}</td><td>${o.rows_after ?? '—'}</td><td>${o.versions_deleted.length}</td></tr>`)}</tbody></table></div>
    <h3>Subjects</h3>
    <div class="table-wrap"><table data-table="report-matches"><thead><tr><th>Subject (keyed hash)</th><th>Outcome</th><th>Per data mapper</th></tr></thead>
      <tbody>${report.matches.map((m) => html`<tr><td class="mono">${m.match_hash.slice(0, 16)}…</td><td>${m.status}</td>
        <td>${m.accounts.map((a) => html`<div>${a.data_mapper_id}: ${a.status}, ${a.rows} row(s) in ${a.objects} of ${a.objects_searched} object(s)${a.reason ? ` — ${a.reason}` : ''}</div>`)}</td></tr>`)}</tbody></table></div>
  </div>`;
}

function JobPage({ me, id }) {
  const [job, setJob] = useState(null);
  const [error, setError] = useState(null);
  const cancel = async () => {
    if (!confirm('Cancel this job? Tasks not started will not run.')) return;
    try { setJob(await api('POST', `/v1/jobs/${enc(id)}/cancel`)); } catch (e) { setError(e); }
  };
  const active = job && ACTIVE.includes(job.status);
  return html`<section>
    <h1>Job <code>${id}</code></h1>
    <${ProblemBox} error=${error} />
    <${JobProgress} jobId=${id} onJob=${setJob} />
    ${job && html`<p class="muted">Started by ${job.created_by} (${job.trigger}) at ${when(job.created_at)} over ${job.data_mappers.join(', ')}; ${job.queue_items} queued subject(s).</p>`}
    ${active && me.actions.includes('job_write') && html`<div class="actions"><button type="button" class="danger" onClick=${cancel}>Cancel the job</button></div>`}
    ${job && !active && html`<h2>Report</h2><${JobReport} jobId=${id} />`}
    <h2>Events</h2>
    <${JobEvents} jobId=${id} live=${job ? job.status : ''} />
  </section>`;
}

// ---------------------------------------------------------------- governance and audit

function Classifications({ me }) {
  const [db, setDb] = useState('');
  const [table, setTable] = useState('');
  const [changes, setChanges] = useState({});
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState(null);
  const dbs = useLoad(() => get('/v1/glue/databases'), []);
  const tables = useLoad(() => (db ? get(`/v1/glue/databases/${enc(db)}/tables`) : Promise.resolve(null)), [db]);
  const columns = useLoad(() => (db && table ? get(`/v1/catalog/${enc(db)}/${enc(table)}/columns`) : Promise.resolve(null)), [db, table]);
  const save = async () => {
    try {
      await api('PUT', `/v1/catalog/${enc(db)}/${enc(table)}/classifications`, {
        columns: Object.entries(changes).map(([name, classification]) => ({ name, classification })),
      });
      setChanges({});
      setNotice('Classifications saved. Plan and apply to bring Lake Formation in line.');
      columns.reload();
    } catch (e) { setError(e); }
  };
  return html`<div>
    <div class="actions">
      <span class="field"><label for="cls-db">Database</label><select id="cls-db" value=${db} onChange=${(e) => { setDb(e.target.value); setTable(''); }}>
        <option value="">Choose</option>${(dbs.data ? dbs.data.databases : []).map((d) => html`<option value=${d}>${d}</option>`)}</select></span>
      <span class="field"><label for="cls-table">Table</label><select id="cls-table" value=${table} onChange=${(e) => setTable(e.target.value)}>
        <option value="">Choose</option>${(tables.data ? tables.data.tables : []).map((t) => html`<option value=${t}>${t}</option>`)}</select></span>
    </div>
    <${ProblemBox} error=${error || dbs.error || columns.error} />
    ${notice && html`<div class="notice" role="status">${notice}</div>`}
    ${columns.data && html`<div class="table-wrap"><table><thead><tr><th>Column</th><th>Type</th><th>Classification</th></tr></thead>
      <tbody>${columns.data.columns.map((c) => html`<tr><td class="mono">${c.name}</td><td class="mono">${c.data_type || c.kind}</td><td>
        ${me.actions.includes('governance_write')
          ? html`<select aria-label=${`classification of ${c.name}`} value=${changes[c.name] || c.classification} onChange=${(e) => setChanges({ ...changes, [c.name]: e.target.value })}>
              ${['pii', 'non_pii', 'unclassified'].map((v) => html`<option value=${v}>${v}</option>`)}</select>${c.inherited ? html` <span class="muted">(inherited)</span>` : ''}`
          : c.classification}</td></tr>`)}</tbody></table></div>
      ${me.actions.includes('governance_write') && html`<div class="actions"><button type="button" disabled=${Object.keys(changes).length === 0} onClick=${save}>Save ${Object.keys(changes).length} change(s)</button></div>`}`}
  </div>`;
}

const grantText = (g) => `${g.principal} — ${g.database}.${g.table}: ${g.permissions.join(', ')} on ${g.target.columns ? g.target.columns.join(', ') : (g.target.kind || JSON.stringify(g.target))}`;

function Governance({ me }) {
  const policies = useLoad(() => get('/v1/access_policies?page_size=1000'), []);
  const enforcement = useLoad(() => get('/v1/access_policies/enforcement'), []);
  const drift = useLoad(() => get('/v1/access_policies/drift').catch((e) => {
    if (e.doc && e.doc.status === 404) return null;
    throw e;
  }), []);
  const [plan, setPlan] = useState(null);
  const [applied, setApplied] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const makePlan = async () => {
    setBusy(true);
    try { setPlan(await api('POST', '/v1/access_policies/plan')); setApplied(null); setError(null); } catch (e) { setError(e); } finally { setBusy(false); }
  };
  const apply = async () => {
    if (!confirm(`Apply ${plan.to_grant.length} grant(s) and ${plan.to_revoke.length} revoke(s) to Lake Formation?`)) return;
    setBusy(true);
    try { setApplied(await api('POST', '/v1/access_policies/apply', { plan: { to_grant: plan.to_grant, to_revoke: plan.to_revoke } })); setPlan(null); } catch (e) { setError(e); } finally { setBusy(false); }
  };
  return html`<section>
    <h1>Governance</h1>
    <h2>Column classifications</h2>
    <${Classifications} me=${me} />
    <h2>Access policies</h2>
    <${ProblemBox} error=${policies.error || enforcement.error || error} />
    ${policies.data && html`<div class="table-wrap"><table><thead><tr><th>Name</th><th>Principal</th><th>Tables</th><th>Access</th><th>Permissions</th></tr></thead>
      <tbody>${policies.data.access_policies.map((p) => html`<tr><td>${p.name}</td><td class="mono">${p.principal}</td>
        <td>${p.tables.map((t) => `${t.database}.${t.table}`).join(', ')}</td><td>${typeof p.access === 'string' ? p.access : `columns: ${(p.access.columns || []).join(', ')}`}</td><td>${p.permissions.join(', ')}</td></tr>`)}</tbody></table></div>`}
    <h3>Drift</h3>
    <p>${drift.data && drift.data.checked_at
      ? `At the last reconciliation (${when(drift.data.checked_at)}), ${drift.data.drifted_grants} grant(s) differed from the declaration.${drift.data.error ? ` It failed: ${drift.data.error}` : ''}`
      : 'No reconciliation has run yet; compare below.'}</p>
    ${enforcement.data && enforcement.data.issues.length > 0 && html`<h3>Enforcement warnings</h3><ul>${enforcement.data.issues.map((i) => html`<li><strong>${i.database}.${i.table}</strong>: ${i.detail}</li>`)}</ul>`}
    <h2>Plan</h2>
    <div class="actions"><button type="button" class="secondary" onClick=${makePlan} disabled=${busy}>${busy ? 'Working…' : 'Compare with Lake Formation'}</button></div>
    ${plan && html`<div data-plan>
      <p>${plan.to_grant.length} to grant, ${plan.to_revoke.length} to revoke, ${plan.unchanged.length} unchanged.</p>
      <ul>${plan.to_grant.map((g) => html`<li class="diff-grant">+ grant ${grantText(g)}</li>`)}
        ${plan.to_revoke.map((g) => html`<li class="diff-revoke">− revoke ${grantText(g)}</li>`)}</ul>
      ${plan.warnings.length > 0 && html`<h3>Warnings</h3><ul>${plan.warnings.map((w) => html`<li>${typeof w === 'string' ? w : JSON.stringify(w)}</li>`)}</ul>`}
      ${me.actions.includes('governance_write') && (plan.to_grant.length + plan.to_revoke.length > 0) && html`<div class="actions"><button type="button" onClick=${apply} disabled=${busy}>Apply</button></div>`}
    </div>`}
    ${applied && html`<div class="notice" role="status">${applied.outcomes.length - applied.failed} change(s) applied, ${applied.failed} failed, ${applied.skipped_stale} skipped as stale.</div>`}
  </section>`;
}

function Audit() {
  const [filter, setFilter] = useState({ actor: '', action: '', since: '' });
  const [events, setEvents] = useState([]);
  const [next, setNext] = useState(null);
  const [error, setError] = useState(null);
  const query = (start) => {
    const q = new URLSearchParams({ page_size: '50' });
    if (filter.actor) q.set('actor', filter.actor);
    if (filter.action) q.set('action', filter.action);
    if (filter.since) q.set('since', new Date(filter.since).toISOString());
    if (start) q.set('start_at', start);
    return `/v1/audit_events?${q}`;
  };
  const search = (e) => {
    if (e) e.preventDefault();
    get(query(null)).then((p) => { setEvents(p.audit_events); setNext(p.next_start); setError(null); }, setError);
  };
  useEffect(() => { search(); }, []);
  return html`<section>
    <h1>Audit trail</h1>
    <form onSubmit=${search} class="actions">
      <span class="field"><label for="a-actor">Actor</label><input id="a-actor" type="text" value=${filter.actor} onInput=${(e) => setFilter({ ...filter, actor: e.target.value })} /></span>
      <span class="field"><label for="a-action">Action</label><input id="a-action" type="text" value=${filter.action} onInput=${(e) => setFilter({ ...filter, action: e.target.value })} /></span>
      <span class="field"><label for="a-since">Since</label><input id="a-since" type="datetime-local" value=${filter.since} onInput=${(e) => setFilter({ ...filter, since: e.target.value })} /></span>
      <button type="submit">Filter</button>
    </form>
    <${ProblemBox} error=${error} />
    <div class="table-wrap"><table data-table="audit"><thead><tr><th>When</th><th>Actor</th><th>Action</th><th>Target</th><th>Details</th></tr></thead>
      <tbody>${events.map((e) => html`<tr><td>${when(e.created_at)}</td><td>${e.actor}</td><td><code>${e.action}</code></td>
        <td class="mono">${e.target_type}${e.target_id ? ` ${e.target_id}` : ''}</td><td><details><summary>details</summary><pre>${JSON.stringify(e.details, null, 2)}</pre>
        <span class="muted">request ${e.request_id || '—'}${e.client_request_id ? ` (client ${e.client_request_id})` : ''}</span></details></td></tr>`)}</tbody></table></div>
    ${next && html`<div class="actions"><button type="button" class="secondary" onClick=${() => get(query(next)).then((p) => { setEvents([...events, ...p.audit_events]); setNext(p.next_start); }, setError)}>Load more</button></div>`}
  </section>`;
}

// ---------------------------------------------------------------- the app

function Page({ me, hash }) {
  const parts = routeOf(hash) || ['?'];
  const can = (a) => me.actions.includes(a);
  const denied = html`<p class="problem">Your roles do not allow this page.</p>`;
  switch (parts[0]) {
    case '':
      return html`<${Dashboard} me=${me} />`;
    case 'mappers':
      if (!can('data_mapper_read')) return denied;
      if (parts[1] === 'new') return can('data_mapper_write') ? html`<${MapperForm} me=${me} />` : denied;
      if (parts[1] && parts[2] === 'edit') return can('data_mapper_write') ? html`<${MapperForm} me=${me} id=${parts[1]} />` : denied;
      if (parts[1]) return html`<${MapperDetail} me=${me} id=${parts[1]} />`;
      return html`<${Mappers} me=${me} />`;
    case 'queue':
      return can('queue_read') ? html`<${Queue} me=${me} />` : denied;
    case 'jobs':
      if (!can('job_read')) return denied;
      if (parts[1] === 'new') return can('job_write') ? html`<${StartJob} />` : denied;
      if (parts[1] && !isJobId(parts[1])) return html`<p class="problem" data-bad-job-id>No such job: a job id is a UUID. <a href="#/jobs">Jobs</a></p>`;
      if (parts[1]) return html`<${JobPage} me=${me} id=${parts[1]} />`;
      return html`<${Jobs} me=${me} />`;
    case 'governance':
      return can('governance_read') ? html`<${Governance} me=${me} />` : denied;
    case 'audit':
      return can('audit_read') ? html`<${Audit} />` : denied;
    default:
      return html`<p class="problem">No such page. <a href="#/">Dashboard</a></p>`;
  }
}

function App() {
  const hash = useHash();
  const [me, setMe] = useState(null);
  const [checking, setChecking] = useState(Boolean(token()));
  const [expired, setExpired] = useState(null);
  useEffect(() => {
    if (!token()) return;
    get('/v1/me').then(setMe, (e) => { sessionStorage.removeItem(TOKEN_KEY); setExpired(e); }).finally(() => setChecking(false));
  }, []);
  if (checking) return html`<${Loading} what="your session" />`;
  if (!me) return html`<${SignIn} onSignedIn=${setMe} error=${expired} />`;
  const signOut = () => { sessionStorage.removeItem(TOKEN_KEY); setMe(null); go('#/'); };
  return html`<${Layout} me=${me} hash=${hash} onSignOut=${signOut}><${Page} me=${me} hash=${hash} /></${Layout}>`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
