/**
 * Falco rule files, loaded as Falco loads them: the reader decodes each file's items
 * (reader.ts), the collector keeps lists, macros and rules in load order with Falco's
 * redefinition and append semantics (collector.ts), and the compiler turns the collection into a
 * rule set (compiler.ts). After each file the whole set is compiled again, so a file that only
 * works with a later file fails as it does in Falco. Loading stops at the first error of a file.
 * Errors and warnings carry file:line:col and the item ("rule 'X'") with Falco's codes.
 */
import { readFileSync } from 'node:fs';
import { Collector } from './collector.js';
import { compileRules, warnUnused } from './compiler.js';
import { LoadLog, type LoadMessage, type RuleSet } from './load-info.js';
import { readRuleFile } from './reader.js';
import type { Resolver } from './resolve.js';

export {
  ENGINE_VERSION,
  MAX_WARNINGS,
  PLUGIN_VERSIONS,
  RuleLoadError,
  SOURCE,
  formatMessage,
  type CompiledRule,
  type LoadMessage,
  type RuleSet,
  type RuleSummary,
  type Where,
} from './load-info.js';

export class RuleLoader {
  private readonly log: LoadLog = new LoadLog();
  private readonly collector = new Collector(this.log);
  readonly messages: LoadMessage[] = this.log.messages;
  private readonly files: string[] = [];
  /** The set compiled after the last file, and whether the unused macro/list warnings were added. */
  private last?: { set: RuleSet; resolver: Resolver; final: boolean };

  /** Loads one rule file from disk; throws RuleLoadError at the first error. */
  loadFile(path: string, displayName = path): void {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      this.log.fail({ severity: 'error', code: 'LOAD_ERR_FILE_READ', message: `could not read rules file: ${(e as Error).message}`, where: { file: displayName, line: 0, col: 0 } });
    }
    this.loadText(text, displayName);
  }

  /** Loads rule file content; throws RuleLoadError at the first error. */
  loadText(text: string, name: string): void {
    this.last = undefined;
    this.files.push(name);
    readRuleFile(text, name, this.collector);
    // Compile the whole set after each file, so errors surface at the file Falco reports them for.
    this.last = { ...compileRules(this.collector, this.files), final: false };
  }

  /** The compiled rule set after the last file (with the unused macro/list warnings). */
  result(): RuleSet {
    this.last ??= { ...compileRules(this.collector, this.files), final: false };
    if (!this.last.final) {
      warnUnused(this.collector, this.last.resolver);
      this.last.final = true;
    }
    return this.last.set;
  }
}

/** Loads rule files in order and returns the compiled set; throws RuleLoadError. */
export function loadRuleFiles(files: ReadonlyArray<{ path: string; name?: string }>): RuleSet {
  const loader = new RuleLoader();
  for (const f of files) loader.loadFile(f.path, f.name ?? f.path);
  return loader.result();
}
