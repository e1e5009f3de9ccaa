// The old system's acceptance scenario: 1000 concurrent users with 1 s think time.
// Each VU keeps one role for the run (MIX, default public=85,partner=8,pledge=5,legacy=2):
// public browsers, partners working with API keys, donors pledging, and the old
// client that logs in once at /api/token/ and lists /api/campanhas/listar/.
import {
  browse,
  buildOptions,
  clientRoleOf,
  legacyList,
  legacyTokens,
  OPEN,
  parseMix,
  partnerOf,
  partnerWork,
  pledge,
  roleOf,
  stagger,
  summaryTo,
  think,
  vuId,
} from './lib.js';

export const options = buildOptions('mixed', { defaultVus: 1000 });
const MIX = parseMix('public=85,partner=8,pledge=5,legacy=2');

// Open model: the old clients' tokens are shared (lib.js: legacyTokens).
export function setup() {
  return { legacy: OPEN && MIX.some(([name]) => name === 'legacy') ? legacyTokens() : null };
}

/** The shared tokens for an open-model VU that is not one of the closed model's old
 * clients; null otherwise (it logs in itself). */
function sharedLegacy(data, vu) {
  return data.legacy !== null && clientRoleOf(vu, MIX) !== 'legacy' ? data.legacy : null;
}

export default function (data) {
  stagger();
  const vu = vuId();
  const role = roleOf(vu, MIX);
  if (role === 'partner') partnerWork(partnerOf(vu));
  else if (role === 'pledge') pledge();
  else if (role === 'legacy') legacyList(vu, sharedLegacy(data, vu));
  else browse();
  think();
}

export function handleSummary(data) {
  return summaryTo(data);
}
