// Shared by every scenario: settings from the environment (set by load/run.py),
// the data file, metrics the runner reads back, and one function per kind of work.
//
// Environment (all optional except BASE_URL and TARGETS):
//   BASE_URL   the edge, e.g. http://127.0.0.1:8080
//   TARGETS    targets.json written by the runner (tenants, keys, campaigns)
//   RUN_ID     tags every donation this run writes (reconciliation finds them by it)
//   MODEL      closed (constant VUs, think time) | open (constant arrival rate)
//   VUS, DURATION, THINK (seconds), RATE (iterations/s), MAX_VUS, TIMEOUT
//   RAMP       closed model: reach VUS over RAMP (e.g. 10s) before DURATION
//   LOGIN_SPREAD  legacy users log in at a random time within these seconds
//   SKEW       popularity skew: campaign index = N * u^SKEW (1 = uniform)
//   RETRY      share of pledges sent a second time with the same Idempotency-Key
//   SUMMARY    where handleSummary writes k6's end-of-test summary (JSON)
//   CAREFUL    careful clients (load/chaos.py): a request with no answer or a 5xx is
//              sent again, a write with the same Idempotency-Key, up to CAREFUL more
//              times after a back-off (Retry-After when given); 0 (default): never
//   SERIES_STEP, SERIES_BUCKETS  the per-second series: buckets of SERIES_STEP seconds
//              since the scenario started, SERIES_BUCKETS of them (see buildOptions)
//
// Nothing is written per request (no `--out`): the figures come from k6's summary
// (handleSummary), and the rare lines the runner needs one by one (donation events,
// failed requests) from console.log, which the runner sends to a file.

import http from 'k6/http';
import exec from 'k6/execution';
import { sleep } from 'k6';
import { SharedArray } from 'k6/data';
import { Counter, Rate } from 'k6/metrics';

export const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
export const RUN_ID = __ENV.RUN_ID || 'adhoc';
// Every donation of the run has this donor contact: contacts and messages are
// encrypted at rest, and reconciliation finds the run's rows by this contact's keyed
// hash (load/reconcile.py: run_contact).
const RUN_CONTACT = `load-run-${RUN_ID}@example.org`;
export const THINK = parseFloat(__ENV.THINK || '1');
export const OPEN = (__ENV.MODEL || 'closed') === 'open';
const SKEW = parseFloat(__ENV.SKEW || '3');
const RETRY = parseFloat(__ENV.RETRY || '0.1');
const TIMEOUT = __ENV.TIMEOUT || '10s';
const CAREFUL = parseInt(__ENV.CAREFUL || '0', 10);
const BACKOFF_S = [0.25, 0.5, 1, 2]; // then 2 s; Retry-After wins, at most 2 s
const SERIES_STEP = Math.max(1, parseInt(__ENV.SERIES_STEP || '1', 10));
const SERIES_BUCKETS = parseInt(__ENV.SERIES_BUCKETS || '60', 10);

// Every request's `name` tag (requests by name in the report).
export const REQUEST_NAMES = [
  'public_directory', 'public_directory_next', 'public_tenant_directory', 'public_campaign',
  'public_donations', 'pledge', 'pledge_retry', 'partner_list_campaigns', 'partner_get_campaign',
  'partner_list_donations', 'partner_edit_campaign', 'partner_record_donation',
  'partner_confirm_donation', 'partner_get_donation', 'legacy_login', 'legacy_list',
  'page_directory', 'page_organization', 'page_campaign',
];

// SharedArray: the file is read and parsed once, not once per VU (1000 VUs). Reading
// an element parses it again (a copy per read), so the VUs read them through
// campaignAt/tenantAt, which keep what this VU has read (a few dozen campaigns).
const campaigns = new SharedArray('campaigns', () => JSON.parse(open(__ENV.TARGETS)).campaigns);
const tenants = new SharedArray('tenants', () => JSON.parse(open(__ENV.TARGETS)).tenants);
export const CAMPAIGNS = campaigns.length;
export const TENANTS = tenants.length;
function memoized(shared) {
  const seen = {};
  return (n) => {
    let value = seen[n];
    if (value === undefined) {
      value = shared[n];
      seen[n] = value;
    }
    return value;
  };
}
export const campaignAt = memoized(campaigns);
export const tenantAt = memoized(tenants);

// k6/execution builds a new object on every read of exec.vu or exec.scenario (about
// 9 % of k6's CPU in a 1000-user profile when read per request), so what does not
// change during a run is read once per VU.
function once(read) {
  let value;
  return () => {
    if (value === undefined) value = read();
    return value;
  };
}
export const vuId = once(() => exec.vu.idInTest);
const scenarioStart = once(() => exec.scenario.startTime);
let started = false;
const meta = new SharedArray('meta', () => [JSON.parse(open(__ENV.TARGETS)).meta])[0];
const dir = meta.directory;

// Directory queries a browser would send: orders, statuses, filters, searches.
const DIRECTORY_QUERIES = (() => {
  const qs = ['', 'order=deadline', 'order=progress', 'status=all', 'order=oldest&status=ended'];
  for (const c of dir.categories) qs.push(`category=${encodeURIComponent(c)}`);
  for (const l of dir.locations) qs.push(`location=${encodeURIComponent(l)}`);
  for (const w of dir.words) qs.push(`q=${encodeURIComponent(w)}&order=deadline`);
  return qs;
})();
const LEGACY_QUERIES = ['', 'status=ativa&ordenar=prazo', 'ordenar=progresso', 'status=todas']
  .concat(dir.words.map((w) => `busca=${encodeURIComponent(w)}&status=ativa&ordenar=prazo`));

// What the runner reads back.
export const cacheHit = new Rate('cache_hit'); // every GET: edge or Redis answered it
export const edgeHit = new Rate('edge_cache_hit'); // public GETs: the edge microcache answered
export const apiHit = new Rate('api_cache_hit'); // GETs the API answered: from Redis
export const timeouts = new Counter('timeouts');
export const replayMismatch = new Counter('replay_mismatch');

const EDGE_HITS = { HIT: true, STALE: true, UPDATING: true, REVALIDATED: true };
const JSON_HEADERS = { 'Content-Type': 'application/json' };

/** k6 options for the chosen model; `scenarioName` names the k6 scenario. */
export function buildOptions(scenarioName, { defaultVus = 50 } = {}) {
  const model = __ENV.MODEL || 'closed';
  const duration = __ENV.DURATION || '30s';
  let scenario;
  if (model === 'open') {
    const rate = parseInt(__ENV.RATE || '100', 10);
    scenario = {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration,
      preAllocatedVUs: parseInt(__ENV.VUS || String(Math.max(10, Math.ceil(rate / 10))), 10),
      maxVUs: parseInt(__ENV.MAX_VUS || String(Math.max(50, rate * 2)), 10),
      gracefulStop: '5s',
    };
  } else if (__ENV.RAMP && __ENV.RAMP !== '0s' && __ENV.RAMP !== '0') {
    // Users arrive over RAMP, then all of them stay for DURATION.
    const vus = parseInt(__ENV.VUS || String(defaultVus), 10);
    scenario = {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [{ duration: __ENV.RAMP, target: vus }, { duration, target: vus }],
      gracefulRampDown: '5s',
      gracefulStop: '5s',
    };
  } else {
    scenario = {
      executor: 'constant-vus',
      vus: parseInt(__ENV.VUS || String(defaultVus), 10),
      duration,
      gracefulStop: '5s',
    };
  }
  return {
    scenarios: { [scenarioName]: scenario },
    // count: requests per bucket, from the per-bucket duration submetrics.
    summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'],
    thresholds: seriesThresholds(),
    noCookiesReset: true,
  };
}

/** Thresholds that only exist to make k6 keep submetrics: k6 puts a submetric
 * (`http_req_duration{sec:12}`) in handleSummary's data only when a threshold names
 * it. Per bucket of the series (the `sec` tag, see bucketOf): latency percentiles and
 * the request count, and failed requests; per request name: requests and latency. Every
 * expression holds for any value (a duration is >= 0, so is a count or a rate): these
 * thresholds must never fail the run. Each sample is matched against every
 * submetric of its metric, so the runner keeps the buckets few (<= 120: 1 s each for
 * runs up to about 2 minutes, wider beyond). */
function seriesThresholds() {
  const thresholds = {};
  for (let n = 0; n < SERIES_BUCKETS; n++) {
    const sec = n * SERIES_STEP;
    thresholds[`http_req_duration{sec:${sec}}`] = ['max>=0'];
    thresholds[`http_req_failed{sec:${sec}}`] = ['rate>=0'];
  }
  for (const name of REQUEST_NAMES) {
    thresholds[`http_reqs{name:${name}}`] = ['count>=0'];
    thresholds[`http_req_duration{name:${name}}`] = ['max>=0'];
  }
  return thresholds;
}

/** The series bucket a request starts in: seconds since the scenario started, down
 * to a multiple of SERIES_STEP (a tag, so the bucket's submetrics see the request). */
function bucketOf() {
  const elapsed = (Date.now() - scenarioStart()) / 1000;
  return String(Math.floor(elapsed / SERIES_STEP) * SERIES_STEP);
}

/** Closed model: think between actions; open model: arrivals pace the load. */
export function think() {
  if (!OPEN && THINK > 0) {
    sleep(THINK * (0.5 + Math.random()));
  }
}

/** On the first iteration, wait a random part of the think time so 1000 VUs do not
 * fire together at second 0. */
export function stagger() {
  if (started) return;
  started = true;
  if (!OPEN) sleep(Math.random() * Math.max(THINK, 0.1));
}

/** An index in [0, n) skewed toward the front: a few popular campaigns get most views. */
export function popular(n) {
  return Math.min(n - 1, Math.floor(n * Math.pow(Math.random(), SKEW)));
}

export function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

/** The tenant (and its key) a VU works for: fixed per VU, spread over every key. */
export function partnerOf(vu) {
  const t = tenantAt(vu % TENANTS);
  const key = t.keys[Math.floor(vu / TENANTS) % t.keys.length];
  return { tenant: t, index: vu % TENANTS, key };
}

function isFailure(res) {
  return res.status < 200 || res.status >= 400;
}

/** One console line per failed request (the target is none, so they are few): the
 * runner counts them by name and status. Failed as k6's http_req_failed counts it by
 * default (no responseCallback here): a status outside 200-399, or no response
 * (status 0). Careful clients add when (t, ms since the epoch), Retry-After (ra) and
 * whether the client gives up with it (final: the error a user sees). */
function logFailure(res, name, final) {
  if (!isFailure(res)) return;
  const failed = { name, status: res.status };
  if (CAREFUL > 0) {
    failed.t = Date.now();
    failed.ra = res.headers['Retry-After'] || '';
    failed.final = final;
  }
  console.log(JSON.stringify({ failed }));
}

/** Careful clients: no answer or a 5xx is tried again, up to CAREFUL times, after a
 * back-off; `done(res)` says a retry's answer shows the lost attempt took effect. */
function careful(name, call, done) {
  let res = call();
  for (let n = 0; n < CAREFUL && (res.status === 0 || res.status >= 500); n++) {
    if (res.error_code === 1050) timeouts.add(1);
    logFailure(res, name, false);
    const after = parseFloat(res.headers['Retry-After'] || '');
    const wait = after > 0 ? after : BACKOFF_S[Math.min(n, BACKOFF_S.length - 1)];
    sleep(Math.min(2, wait) * (0.75 + Math.random() / 2));
    res = call();
    if (done && done(res)) return res;
  }
  logFailure(res, name, true);
  return res;
}

function record(res, isGet, edgeCacheable) {
  if (res.error_code === 1050) timeouts.add(1);
  if (!isGet) return;
  const edge = res.headers['X-Cache-Status'] || '';
  const fromEdge = EDGE_HITS[edge] === true;
  if (edgeCacheable) edgeHit.add(fromEdge);
  if (!fromEdge) {
    const api = res.headers['X-Cache'];
    if (api) apiHit.add(api === 'HIT');
    cacheHit.add(api === 'HIT');
  } else {
    cacheHit.add(true);
  }
}

export function get(path, name, { headers = {}, body = false, edgeCacheable = false } = {}) {
  const call = () => http.get(BASE + path, {
    headers,
    tags: { name, sec: bucketOf() },
    timeout: TIMEOUT,
    responseType: body ? 'text' : 'none',
  });
  const res = CAREFUL > 0 ? careful(name, call) : call();
  if (CAREFUL === 0) logFailure(res, name, true);
  record(res, true, edgeCacheable);
  return res;
}

/** A write; `done(res)`: see careful. */
export function send(method, path, name, payload, headers = {}, done = null) {
  const data = payload === null ? null : JSON.stringify(payload);
  const call = () => http.request(method, BASE + path, data, {
    headers: Object.assign({}, JSON_HEADERS, headers),
    tags: { name, sec: bucketOf() },
    timeout: TIMEOUT,
  });
  const res = CAREFUL > 0 ? careful(name, call, done) : call();
  if (CAREFUL === 0) logFailure(res, name, true);
  record(res, false, false);
  return res;
}

function bodyOf(res) {
  try {
    return res.json();
  } catch (e) {
    return null;
  }
}

/** A donation event for reconciliation: one console line (the runner sends k6's
 * console to a file and copies these to donations.jsonl); every value a string. */
export function donationEvent(ev, fields) {
  const event = { ev };
  for (const k of Object.keys(fields)) event[k] = String(fields[k]);
  console.log(JSON.stringify({ donation: event }));
}

let keySeq = 0;
function newKey(kind) {
  keySeq += 1;
  return `${RUN_ID}.${kind}.${vuId()}.${keySeq}`;
}

// ------------------------------------------------------------------ public browsing

export function browseDirectory() {
  const query = DIRECTORY_QUERIES[popular(DIRECTORY_QUERIES.length)];
  // Some visitors go on to page 2: the body is read only for them.
  const next = Math.random() < 0.1;
  const res = get(`/api/public/campaigns${query ? '?' + query : ''}`, 'public_directory', {
    body: next,
    edgeCacheable: true,
  });
  if (next && res.status === 200) {
    const page = bodyOf(res);
    if (page && page.next_cursor) {
      const sep = query ? '&' : '';
      get(`/api/public/campaigns?${query}${sep}cursor=${encodeURIComponent(page.next_cursor)}`,
        'public_directory_next', { edgeCacheable: true });
    }
  }
}

export function browseTenant() {
  const c = campaignAt(popular(CAMPAIGNS));
  const order = pick(['', '?order=deadline', '?order=progress']);
  get(`/api/public/${c.tenant}/campaigns${order}`, 'public_tenant_directory', {
    edgeCacheable: true,
  });
}

export function viewCampaign() {
  const c = campaignAt(popular(CAMPAIGNS));
  get(`/api/public/${c.tenant}/campaigns/${c.slug}`, 'public_campaign', { edgeCacheable: true });
}

export function viewDonations() {
  const c = campaignAt(popular(CAMPAIGNS));
  get(`/api/public/${c.tenant}/campaigns/${c.slug}/donations`, 'public_donations', {
    edgeCacheable: true,
  });
}

// PAGES=html: the public browsers read the donor pages (pt-BR HTML, api/routes/pages.py)
// instead of the JSON API: the directory at /, an organization at /o/{tenant}, a
// campaign (with its recent donations) at /o/{tenant}/{slug}; same filters, in the
// pages' Portuguese parameter names.
const HTML_PAGES = (__ENV.PAGES || 'json') === 'html';
const HTML_PARAMS = {
  order: 'ordem', status: 'situacao', category: 'categoria', location: 'local', q: 'busca',
};
const HTML_VALUES = {
  deadline: 'prazo', progress: 'progresso', oldest: 'antigas', recent: 'recentes',
  all: 'todas', ended: 'encerradas', active: 'ativas',
};

/** A JSON directory query in the pages' words: `order=deadline` → `ordem=prazo`. */
export function htmlQuery(query) {
  if (!query) return '';
  return query.split('&').map((pair) => {
    const [k, v] = pair.split('=');
    const key = HTML_PARAMS[k] || k;
    const value = k === 'order' || k === 'status' ? (HTML_VALUES[v] || v) : v;
    return `${key}=${value}`;
  }).join('&');
}

function browsePages(r) {
  const c = campaignAt(popular(CAMPAIGNS));
  if (r < 0.35) {
    const query = htmlQuery(DIRECTORY_QUERIES[popular(DIRECTORY_QUERIES.length)]);
    get(`/${query ? '?' + query : ''}`, 'page_directory', { edgeCacheable: true });
  } else if (r < 0.5) {
    const order = pick(['', '?ordem=prazo', '?ordem=progresso']);
    get(`/o/${c.tenant}${order}`, 'page_organization', { edgeCacheable: true });
  } else {
    get(`/o/${c.tenant}/${c.slug}`, 'page_campaign', { edgeCacheable: true });
  }
}

export function browse() {
  const r = Math.random();
  if (HTML_PAGES) browsePages(r);
  else if (r < 0.35) browseDirectory();
  else if (r < 0.5) browseTenant();
  else if (r < 0.85) viewCampaign();
  else viewDonations();
}

// ------------------------------------------------------------------ donor pledges

/** A pledge with a fresh Idempotency-Key; some are sent again and must replay. */
export function pledge() {
  const c = campaignAt(popular(CAMPAIGNS));
  const key = newKey('p');
  const item = pick(c.items);
  const qty = 1 + Math.floor(Math.random() * 5);
  const body = {
    item_id: item,
    quantity: qty,
    donor_name: `Load ${vuId()}`,
    donor_contact: RUN_CONTACT,
    message: `load-run ${RUN_ID} key ${key}`,
    anonymous: Math.random() < 0.2,
  };
  const path = `/api/public/${c.tenant}/campaigns/${c.slug}/donations`;
  const headers = { 'Idempotency-Key': key };
  donationEvent('sent', { key, tenant: c.tenant });
  const res = send('POST', path, 'pledge', body, headers);
  if (res.status !== 201) return;
  const out = bodyOf(res);
  if (!out) return;
  donationEvent('ack', { key, id: out.id, tenant: c.tenant, item, qty, state: 'pending' });
  if (Math.random() < RETRY) {
    // A donor's double click or a retry after a lost answer: same key, same body.
    donationEvent('sent', { key, tenant: c.tenant });
    const again = send('POST', path, 'pledge_retry', body, headers);
    if (again.status === 201) {
      const second = bodyOf(again);
      const id = second ? second.id : '';
      if (id !== out.id || again.headers['Idempotent-Replayed'] !== 'true') replayMismatch.add(1);
      donationEvent('ack', { key, id, tenant: c.tenant, item, qty, state: 'pending' });
    }
  }
}

// ------------------------------------------------------------------ partner API work

function partnerCampaign(index) {
  // A campaign of the partner's own tenant, skewed like the public's views: a
  // tenant's campaign indexes are in the global popularity order (by_tenant is
  // ascending), so the skew over them is the global skew restricted to the tenant.
  const own = meta.by_tenant[index];
  return campaignAt(own[popular(own.length)]);
}

export function partnerRead(p) {
  const auth = { Authorization: `Bearer ${p.key}` };
  const c = partnerCampaign(p.index);
  const r = Math.random();
  if (r < 0.3) get('/api/v1/campaigns?limit=20', 'partner_list_campaigns', { headers: auth });
  else if (r < 0.7) get(`/api/v1/campaigns/${c.id}`, 'partner_get_campaign', { headers: auth });
  else get(`/api/v1/donations?campaign_id=${c.id}`, 'partner_list_donations', { headers: auth });
}

export function partnerEdit(p) {
  const c = partnerCampaign(p.index);
  send('PATCH', `/api/v1/campaigns/${c.id}`, 'partner_edit_campaign',
    { subtitle: `Atualizado ${new Date().toISOString()}` },
    { Authorization: `Bearer ${p.key}` });
}

function isConfirmed(id, auth) {
  const res = get(`/api/v1/donations/${id}`, 'partner_get_donation', { headers: auth, body: true });
  const out = res.status === 200 ? bodyOf(res) : null;
  return out !== null && out.status === 'confirmed';
}

/** Record a donation as the partner, then (usually) confirm it. */
export function partnerDonate(p) {
  const auth = { Authorization: `Bearer ${p.key}` };
  const c = partnerCampaign(p.index);
  const key = newKey('d');
  const item = pick(c.items);
  const qty = 1 + Math.floor(Math.random() * 20);
  donationEvent('sent', { key, tenant: c.tenant });
  const res = send('POST', `/api/v1/campaigns/${c.id}/donations`, 'partner_record_donation', {
    item_id: item,
    quantity: qty,
    donor_name: `Load ${vuId()}`,
    donor_contact: RUN_CONTACT,
    message: `load-run ${RUN_ID} key ${key}`,
  }, Object.assign({ 'Idempotency-Key': key }, auth));
  if (res.status !== 201) return;
  const out = bodyOf(res);
  if (!out) return;
  donationEvent('ack', { key, id: out.id, tenant: c.tenant, item, qty, state: 'pending' });
  if (Math.random() < 0.8) {
    // Recorded before sending: a confirmation that commits but whose answer is
    // lost leaves the row confirmed, which reconciliation then accepts.
    donationEvent('status_sent', { id: out.id, state: 'confirmed' });
    // A careful client's retry that finds the donation no longer pending (409) reads
    // it: confirmed means the attempt whose answer was lost did it.
    let byLostAttempt = false;
    const applied = (r) => (byLostAttempt = r.status === 409 && isConfirmed(out.id, auth));
    const conf = send('POST', `/api/v1/donations/${out.id}/confirm`, 'partner_confirm_donation',
      null, auth, applied);
    if (conf.status === 200 || byLostAttempt) {
      donationEvent('status', { id: out.id, state: 'confirmed' });
    }
  }
}

// ------------------------------------------------------------------ the old system's client

const legacy = { access: null, loginAfter: -1, ownLogin: false };
// Logins (argon2id: tens of ms of CPU and ~64 MB each) are spread over the first
// LOGIN_SPREAD seconds instead of all landing in the first second.
const LOGIN_SPREAD = parseFloat(__ENV.LOGIN_SPREAD || '10');

/** Open model (setup): access tokens of a few tenants' staff, logged in before the clock.
 *
 * In the closed model 2 % of the VUs are old clients, and each logs in once. In the
 * open model every VU draws its role per iteration, so nearly every VU is an old
 * client sooner or later: logging in on each one's first draw made the open model
 * send ~460 argon2 logins a minute against the closed model's 20 (session 36). The
 * VUs share these tokens instead, and only those that would be old clients in the
 * closed model (`clientRoleOf`) log in themselves, so both models send about as many
 * logins for the same share of listings. */
export function legacyTokens() {
  // The listing is the same for every organization's staff (it lists every public
  // campaign); five tokens are the edge's login burst per address, so none waits.
  const tokens = [];
  for (let i = 0; i < Math.min(TENANTS, 5); i++) {
    const t = tenantAt(i);
    let access = null;
    for (let attempt = 0; attempt < 10 && access === null; attempt++) {
      const res = http.post(BASE + '/api/token/',
        JSON.stringify({ username: t.username, password: t.password, tenant: t.slug }), {
          headers: JSON_HEADERS,
          tags: { name: 'legacy_login' },
          timeout: TIMEOUT,
          // The edge lets an address log in 1/s (burst 5): a 429 here is waited out.
          responseCallback: http.expectedStatuses(200, 429),
        });
      if (res.status === 200) access = bodyOf(res).access;
      else if (res.status === 429) sleep(Math.min(parseFloat(res.headers['Retry-After'] || '1'), 2));
      else throw new Error(`setup login for ${t.slug}: ${res.status}`);
    }
    tokens.push(access);
  }
  return tokens;
}

/** Log in once (`/api/token/`), then list the directory the old way with the token.
 * `shared` (open model): the tenants' tokens from `legacyTokens`, used instead of a
 * login of this VU's own. */
export function legacyList(vu, shared = null) {
  if (legacy.access === null && shared !== null && !legacy.ownLogin) {
    legacy.access = shared[vu % shared.length];
  }
  if (legacy.access === null) {
    const now = Date.now() / 1000;
    if (legacy.loginAfter < 0) legacy.loginAfter = now + Math.random() * LOGIN_SPREAD;
    if (now < legacy.loginAfter) {
      // Until its login, the old client browses anonymously like everyone else.
      browseDirectory();
      return;
    }
    const t = tenantAt(vu % TENANTS);
    const res = send('POST', '/api/token/', 'legacy_login',
      { username: t.username, password: t.password, tenant: t.slug });
    const out = res.status === 200 ? bodyOf(res) : null;
    if (!out) {
      legacy.loginAfter = now + 5; // back off: the token route allows 1 r/s per address
      return;
    }
    legacy.access = out.access;
    think();
  }
  const query = LEGACY_QUERIES[popular(LEGACY_QUERIES.length)];
  const res = get(`/api/campanhas/listar/${query ? '?' + query : ''}`, 'legacy_list', {
    headers: { Authorization: `Bearer ${legacy.access}` },
    edgeCacheable: false,
  });
  if (res.status === 401) {
    legacy.access = null;
    legacy.ownLogin = true; // a token that ended (shared or not): log in from now on
  }
}

/** handleSummary for every scenario: k6's summary as JSON where the runner wants it. */
export function summaryTo(summaryData) {
  const path = __ENV.SUMMARY || 'summary-k6.json';
  return { [path]: JSON.stringify(summaryData, null, 1) };
}

/** Weights like "public=85,partner=8,pledge=5,legacy=2" (from MIX, else the default). */
export function parseMix(fallback) {
  const mix = [];
  let total = 0;
  for (const part of (__ENV.MIX || fallback).split(',')) {
    const [name, weight] = part.split('=');
    total += parseFloat(weight);
    mix.push([name.trim(), total]);
  }
  return mix.map(([name, cum]) => [name, cum / total]);
}

function roleAt(u, mix) {
  for (const [name, cum] of mix) if (u < cum) return name;
  return mix[mix.length - 1][0];
}

/** The role a VU keeps in the closed model, spread evenly whatever the VU count
 * (golden-ratio sequence), so 25 VUs get the same shares as 1000. */
export function clientRoleOf(vu, mix) {
  return roleAt((vu * 0.6180339887498949) % 1, mix);
}

/** This iteration's role: the VU's own in the closed model; in the open model,
 * where iterations land on whichever VU is free, drawn each time. */
export function roleOf(vu, mix) {
  return OPEN ? roleAt(Math.random(), mix) : clientRoleOf(vu, mix);
}


/** Partner work: mostly reads, some donations (most confirmed), a few edits. */
export function partnerWork(p) {
  const r = Math.random();
  if (r < 0.72) partnerRead(p);
  else if (r < 0.75) partnerEdit(p);
  else partnerDonate(p);
}
