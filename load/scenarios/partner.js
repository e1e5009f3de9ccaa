// Partner API work with API keys: reads (Redis-cached), campaign edits, recording
// and confirming donations. Each VU works for one tenant with one of its keys, so
// the per-key rate limit sees the load spread as real partners would make it.
import exec from 'k6/execution';
import { buildOptions, partnerOf, partnerWork, stagger, summaryTo, think } from './lib.js';

export const options = buildOptions('partner', { defaultVus: 20 });

export default function () {
  stagger();
  partnerWork(partnerOf(exec.vu.idInTest));
  think();
}

export function handleSummary(data) {
  return summaryTo(data);
}
