// Donor pledges: the public pledge endpoint with a unique Idempotency-Key each;
// a share (RETRY) is sent again with the same key and must replay the same id.
import { buildOptions, pledge, stagger, summaryTo, think } from './lib.js';

export const options = buildOptions('pledges', { defaultVus: 20 });

export default function () {
  stagger();
  pledge();
  think();
}

export function handleSummary(data) {
  return summaryTo(data);
}
