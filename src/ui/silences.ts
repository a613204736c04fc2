/**
 * Alertmanager silences for the page's mutes (`ui.alertmanager_url`): a mute of rule + namespace
 * + user becomes a silence whose matchers are the labels the alertmanager output sets on the same
 * alert (`rule`, and the output fields `ka.target.namespace` / `ka.user.name` under their label
 * names `ka_target_namespace` / `ka_user_name`), ending when the mute ends. Un-muting expires it.
 */
import { safeLabelName } from '../outputs/alertmanager/alert.js';
import type { NewMute } from './alerts.js';

const TIMEOUT_MS = 5000;

export interface SilenceMatcher {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual: boolean;
}

/** The silence's matchers for a mute (exact matches). */
export function silenceMatchers(m: Pick<NewMute, 'rule' | 'namespace' | 'user'>): SilenceMatcher[] {
  const out: SilenceMatcher[] = [{ name: 'rule', value: m.rule, isRegex: false, isEqual: true }];
  if (m.namespace !== undefined) out.push({ name: safeLabelName('ka.target.namespace'), value: m.namespace, isRegex: false, isEqual: true });
  if (m.user !== undefined) out.push({ name: safeLabelName('ka.user.name'), value: m.user, isRegex: false, isEqual: true });
  return out;
}

export class Silences {
  private readonly base: string;

  constructor(url: string) {
    this.base = url.replace(/\/+$/, '');
  }

  get url(): string {
    return this.base;
  }

  /** Creates the silence of a mute from now until it ends; resolves to the silence id. */
  async create(m: NewMute, now: number): Promise<string> {
    const body = {
      matchers: silenceMatchers(m),
      startsAt: new Date(now).toISOString(),
      endsAt: new Date(m.until).toISOString(),
      createdBy: m.by ?? 'logwarden',
      comment: m.comment || 'muted on the logwarden page',
    };
    const res = await fetch(`${this.base}/api/v2/silences`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`POST ${this.base}/api/v2/silences: HTTP ${res.status} ${text.trim().slice(0, 200)}`);
    const id = (JSON.parse(text) as { silenceID?: unknown }).silenceID;
    if (typeof id !== 'string' || id === '') throw new Error(`POST ${this.base}/api/v2/silences: no silenceID in ${text.trim().slice(0, 200)}`);
    return id;
  }

  /** Expires a silence (DELETE /api/v2/silence/ID); one already gone is not an error. */
  async expire(id: string): Promise<void> {
    const res = await fetch(`${this.base}/api/v2/silence/${encodeURIComponent(id)}`, { method: 'DELETE', signal: AbortSignal.timeout(TIMEOUT_MS) });
    const text = await res.text();
    if (!res.ok && res.status !== 404) throw new Error(`DELETE ${this.base}/api/v2/silence/${id}: HTTP ${res.status} ${text.trim().slice(0, 200)}`);
  }
}
