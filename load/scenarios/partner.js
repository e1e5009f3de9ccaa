// Partner API work with API keys: reads (Redis-cached), campaign edits, recording
// and confirming donations. Each VU works for one tenant with one of its keys, so
// the per-key rate limit sees the load spread as real partners would make it.
import { buildOptions, partnerOf, partnerWork, stagger, summaryTo, think, vuId } from './lib.js';

export const options = buildOptions('partner', { defaultVus: 20 });

export default function () {
  stagger();
  partnerWork(partnerOf(vuId()));
  think();
}

export function handleSummary(data) {
  return summaryTo(data);
}
