// Public browsing: the directory (filters, searches, page 2), one tenant's
// directory, campaign pages and recent donations, all through the edge.
import { browse, buildOptions, stagger, summaryTo, think } from './lib.js';

export const options = buildOptions('public', { defaultVus: 100 });

export default function () {
  stagger();
  browse();
  think();
}

export function handleSummary(data) {
  return summaryTo(data);
}
