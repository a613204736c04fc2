/**
 * `logwarden detect`: Falco's `falco -r RULES -e EVENTS` for Kubernetes audit events. Loads
 * rule files, runs events files through them and prints one alert per line in Falco's JSON
 * output shape on stdout; the summary goes to stderr.
 */
import { once } from 'node:events';
import { parseArgs, UsageError, type Command } from './command.js';
import { toJSONLine } from '../core/json.js';
import { jsonItems, Progress } from './stream-json.js';
import { BUNDLED_RULES, DEFAULT_HOSTNAME, Engine, NOT_AUDIT, PRIORITY_NAMES, RuleLoadError, RuleLoader, formatMessage, newStats, parsePriority } from '../falco/index.js';

const usage = `Usage: logwarden detect [-r RULES.yaml ...] -e EVENTS [-e EVENTS ...] [options]

Evaluates Falco rules (source k8s_audit) on Kubernetes audit events, as falco -r ... -e ...
with the k8saudit and json plugins does. EVENTS holds JSON lines, a JSON array, or EventLists
('-' reads stdin), read as a stream: memory stays bounded for any file size; on a terminal a
progress line shows for runs longer than a second. Alerts are printed on stdout, one JSON object per line (Falco's JSON output);
warnings and the summary go to stderr.

Options:
  -r, --rules-file FILE     rule file, loaded in order (repeatable; default: the bundled
                            rules/k8s_audit_rules.yaml)
  -e, --events FILE         events file (repeatable)
      --rule-matching M     first (default: one alert per event, the first matching rule) or all
      --min-priority P      skip rules less severe than P (emergency ... debug; default debug)
      --hostname NAME       hostname of the alerts (default: this host name)
  -L, --list-rules          list the loaded rules (name, priority, source, file:line) and exit

Exit status: 0 when the rules loaded (also when an events file holds no audit event), 1 on a
rule load error or an unreadable events file, 2 on a usage error.

Examples:
  logwarden detect -e audit.log
  logwarden detect -r rules/k8s_audit_rules.yaml -r my_rules.yaml -e audit.log --rule-matching all`;

export const detectCommand: Command = {
  name: 'detect',
  summary: 'Run Falco rules on audit events files and print alerts (falco -r ... -e ...)',
  usage,
  async run(args) {
    const parsed = parseArgs(args, {
      values: {
        '-r': 'rules',
        '--rules-file': 'rules',
        '-e': 'events',
        '--events': 'events',
        '--rule-matching': 'matching',
        '--min-priority': 'priority',
        '--hostname': 'hostname',
      },
      booleans: { '-L': 'list', '--list-rules': 'list' },
    });
    if (parsed.positionals.length) throw new UsageError(`unexpected argument ${parsed.positionals[0]}`);
    const one = (k: string) => {
      const v = parsed.flags.get(k);
      if (v && v.length > 1) throw new UsageError(`option for ${k} given more than once`);
      return v?.[0];
    };
    const matching = one('matching') ?? 'first';
    if (matching !== 'first' && matching !== 'all') throw new UsageError(`--rule-matching: found '${matching}', expected first or all`);
    const minPriority = parsePriority(one('priority') ?? 'debug');
    if (minPriority === undefined) throw new UsageError(`--min-priority: found '${one('priority')}', expected one of ${PRIORITY_NAMES.join(', ').toLowerCase()}`);
    const list = parsed.flags.has('list');
    const eventFiles = parsed.flags.get('events') ?? [];
    if (!list && eventFiles.length === 0) throw new UsageError('give an events file with -e (or --list-rules)');
    const ruleFiles = parsed.flags.get('rules') ?? [BUNDLED_RULES];

    const loader = new RuleLoader();
    try {
      for (const f of ruleFiles) loader.loadFile(f);
    } catch (e) {
      if (!(e instanceof RuleLoadError)) throw e;
      for (const m of e.messages) process.stderr.write(`${formatMessage(m)}\n`);
      process.stderr.write(`Error loading rules: ${e.messages.filter((m) => m.severity === 'error').length} error(s)\n`);
      return 1;
    }
    const ruleSet = loader.result();
    for (const m of ruleSet.messages) process.stderr.write(`${formatMessage(m)}\n`);
    const engine = new Engine(ruleSet, { ruleMatching: matching, minPriority, hostname: one('hostname') ?? DEFAULT_HOSTNAME });
    const skippedSources = [...ruleSet.otherSources].map(([s, n]) => `${n} of source ${s}`).join(', ');

    if (list) {
      const rows = ruleSet.summary.map((r) => [r.name, r.priorityName, r.source, `${r.where.file}:${r.where.line}`, r.skipped ? `skipped: ${r.skipped}` : r.enabled ? '' : 'disabled']);
      const head = ['RULE', 'PRIORITY', 'SOURCE', 'FILE', ''];
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      const fmt = (r: string[]) =>
        r
          .map((c, i) => c.padEnd(widths[i]!))
          .join('  ')
          .trimEnd();
      process.stdout.write(`${[fmt(head), ...rows.map(fmt)].join('\n')}\n`);
      return 0;
    }

    let events = 0;
    const byRule = new Map<string, number>();
    const byPriority = new Map<number, number>();
    let out = '';
    const onAlert = (record: Record<string, unknown>, r: { rule: { name: string; priority: number } }) => {
      out += `${toJSONLine(record)}\n`;
      byRule.set(r.rule.name, (byRule.get(r.rule.name) ?? 0) + 1);
      byPriority.set(r.rule.priority, (byPriority.get(r.rule.priority) ?? 0) + 1);
    };
    const progress = new Progress('detect');
    for (const file of eventFiles) {
      const stats = newStats();
      try {
        for await (const item of jsonItems(file)) {
          if ('error' in item) {
            process.stderr.write(`${file}: line ${item.line}: ${item.error}\n`);
            continue;
          }
          const before = { ...stats };
          engine.detect(item.value, onAlert, stats);
          if (stats.notAudit > before.notAudit) process.stderr.write(`${file}: line ${item.line}: ${NOT_AUDIT}\n`);
          if (stats.invalidTime > before.invalidTime) process.stderr.write(`${file}: line ${item.line}: audit event without a valid RFC 3339 stageTimestamp: dropped\n`);
          progress.update(events + stats.events);
          if (out.length > 1 << 16) {
            process.stdout.write(out);
            out = '';
            // Bounded memory: wait while stdout has not taken the alerts.
            if (process.stdout.writableNeedDrain) await once(process.stdout, 'drain');
          }
        }
      } catch (e) {
        progress.done();
        process.stdout.write(out);
        process.stderr.write(`logwarden detect: cannot read events file ${file}: ${(e as Error).message}\n`);
        return 1;
      }
      events += stats.events;
    }
    progress.done();
    process.stdout.write(out);

    const alerts = [...byRule.values()].reduce((a, b) => a + b, 0);
    const lines = [
      `Events read: ${events} (${eventFiles.length} file${eventFiles.length === 1 ? '' : 's'})`,
      `Rules loaded: ${engine.active.length} k8s_audit rule(s) evaluated from ${ruleSet.files.length} file(s)${skippedSources ? `; skipped: ${skippedSources}` : ''}`,
      `Events detected: ${alerts}`,
    ];
    if (alerts) {
      lines.push('Rule counts by severity:');
      for (const [p, n] of [...byPriority].sort((a, b) => a[0] - b[0])) lines.push(`   ${PRIORITY_NAMES[p]!.toUpperCase()}: ${n}`);
      lines.push('Triggered rules by rule name:');
      for (const [r, n] of byRule) lines.push(`   ${r}: ${n}`);
    }
    process.stderr.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
