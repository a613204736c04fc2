/**
 * parser: Fluent Bit's filter_parser. Parses the string value of `key_name` with the named
 * parsers (the first that matches wins) and replaces the record with the parsed fields; the
 * parsed time, when the parser reads one, becomes the event's time.
 *
 * From plugins/filter_parser/filter_parser.c:
 * - reserve_data keeps the record's other fields next to the parsed ones (parsed fields first;
 *   on a name clash the original value wins, in the original field's place, as Fluent Bit's
 *   JSON shows the duplicate it writes);
 *   preserve_key also keeps key_name itself.
 * - key_name may be a record accessor (`$kubernetes['annotations']['x']`); then reserve_data
 *   keeps the original record, minus the parsed field unless preserve_key.
 * - nest_under puts the parsed fields under that key.
 * - A record whose value is missing, not a string, or matched by no parser passes unchanged
 *   (counted in logwarden_parser_filter_records_total{result}).
 * - unescape_key (deprecated in Fluent Bit; 5.1.1 refuses to load it) unescapes backslash sequences of
 *   the value before parsing, as Fluent Bit 1.x did.
 *
 * A record still in msgpack bytes is not decoded to read key_name: the value is read through the
 * record view (src/core/record-view.ts), so a record that passes unchanged stays bytes. A parsed
 * record (the parser's fields are objects, as the parser builds them):
 * - without reserve_data becomes the parsed fields (with key_name's value for preserve_key,
 *   read through the view): a new record object, the rest of the original never decoded;
 * - with reserve_data stays bytes, the parsed fields merged as edits: key_name removed unless
 *   preserve_key, each parsed field the record does not have put and then moved to the start
 *   (a field the record has keeps its value and place), written with the other pending edits
 *   in one copy pass, the original values copied byte for byte. It is decoded instead where an object orders keys differently from
 *   the bytes (a parsed or kept key that looks like an array index: an object lists those
 *   first), where key_name's place ends in an array index (removing it shifts the array) or has
 *   a sub-key that looks like one, and where the view cannot read the record.
 */
import { ConfigError } from '../../config/errors.js';
import type { OptionTable } from '../../config/schema.js';
import type { LogEvent, LogRecord } from '../../core/event.js';
import { definePlugin, type FilterInstance, type LogParser, type ParsedRecord } from '../../core/plugin.js';
import { AccessorSyntaxError, compileAccessor, hasField, setField, type RecordAccessor } from '../../core/record-accessor.js';
import { unescapeString } from '../../parsers/formats.js';
import { sharedView, ViewUnsupported, type Edit, type RecordView } from '../../core/record-view.js';
import { viewable } from '../../core/record-read.js';
import { WireEvent } from '../../core/wire-event.js';
import { optionPos, WarnLimiter } from '../modify/args.js';
import { cloneRecord } from '../../core/msgpack.js';

const options = {
  key_name: { type: 'string', required: true, description: "Field to parse: a key name or a record accessor ($a['b'])" },
  parser: { type: 'multi', required: true, description: 'Parser name(s); the first that matches the value wins' },
  reserve_data: { type: 'bool', default: false, description: "Keep the record's other fields next to the parsed ones" },
  preserve_key: { type: 'bool', default: false, description: 'Keep key_name in the result' },
  unescape_key: { type: 'bool', default: false, description: 'Unescape backslash sequences (\\n, \\", \\uXXXX...) of the value before parsing' },
  nest_under: { type: 'string', description: 'Put the parsed fields under this key' },
} as const satisfies OptionTable;

const decoder = new TextDecoder();

const INDEX = /^(0|[1-9][0-9]*)$/;

/** Whether the view's top-level key `i` is an array index in canonical decimal (an object lists those first). */
function indexKey(v: RecordView, i: number): boolean {
  const b = v.b;
  const s = v.idx[v.base + i * 5 + 1]!;
  const end = v.idx[v.base + i * 5 + 2]!;
  if (end === s) return false;
  if (b[s] === 0x30) return end - s === 1;
  for (let p = s; p < end; p++) if (b[p]! < 0x30 || b[p]! > 0x39) return false;
  return true;
}

export const parserFilter = definePlugin({
  kind: 'filter',
  name: 'parser',
  description: "Parses a field with named parsers (json, regex, logfmt, ltsv), as Fluent Bit's parser filter",
  options,
  prepare(config, section) {
    let accessor: RecordAccessor | undefined;
    if (config.key_name.startsWith('$')) {
      try {
        accessor = compileAccessor(config.key_name, { allowLiteral: false });
      } catch (e) {
        if (e instanceof AccessorSyntaxError) throw new ConfigError(e.message, optionPos(section, 'key_name'), 'key_name');
        throw e;
      }
    }
    return { config, accessor };
  },
  create({ config, accessor }, ctx): FilterInstance {
    const parsers: LogParser[] = [];
    for (const name of config.parser) {
      const p = ctx.parsers.get(name);
      if (!p) {
        throw new ConfigError(`unknown parser '${name}'; defined parsers: ${ctx.parsers.names().join(', ')}`, optionPos(ctx.section, 'parser'), 'parser');
      }
      parsers.push(p);
    }
    const key = config.key_name;
    const { reserve_data: reserve, preserve_key: preserve, unescape_key: unescapeKey, nest_under: nestUnder } = config;

    const records = ctx.metrics.counter('logwarden_parser_filter_records_total', 'Records through a parser filter by result: parsed, no_match (no parser matched), missing_key, not_string', [
      'name',
      'result',
    ]);
    const m = {
      parsed: records.labels(ctx.id, 'parsed'),
      no_match: records.labels(ctx.id, 'no_match'),
      missing_key: records.labels(ctx.id, 'missing_key'),
      not_string: records.labels(ctx.id, 'not_string'),
    };
    const fieldErrors = ctx.metrics.counter(
      'logwarden_parser_field_errors_total',
      'Parsed records with a time that did not match time_format (time kept from the event) or a failed types cast (value kept as string)',
      ['name', 'reason'],
    );
    const timeErrors = fieldErrors.labels(ctx.id, 'time');
    const castErrors = fieldErrors.labels(ctx.id, 'cast');
    const warnNoMatch = new WarnLimiter(ctx.logger);
    const warnField = new WarnLimiter(ctx.logger);

    // A kept field whose name the parser also produced replaces the parsed one, in the kept
    // field's place: Fluent Bit appends the record's fields after the parsed ones, and its JSON
    // (out_file, Loki, HTTP...) writes a duplicate key once, with the last value, where it last
    // occurs.
    const keep = (out: LogRecord, k: string, v: unknown) => {
      if (hasField(out, k)) delete out[k];
      setField(out, k, v);
    };
    const build = (record: LogRecord, parsed: ParsedRecord): LogRecord => {
      let out: LogRecord = parsed.record;
      if (nestUnder !== undefined) {
        out = {};
        setField(out, nestUnder, parsed.record);
      }
      if (accessor) {
        if (reserve) {
          const original = cloneRecord(record);
          if (!preserve) accessor.delete(original);
          for (const k of Object.keys(original)) keep(out, k, original[k]);
        } else if (preserve && hasField(record, accessor.key)) keep(out, accessor.key, record[accessor.key]);
        return out;
      }
      if (reserve) {
        for (const k of Object.keys(record)) if (k !== key || preserve) keep(out, k, record[k]);
      } else if (preserve) keep(out, key, record[key]);
      return out;
    };

    const view = sharedView;
    const path = accessor ? accessor.path : [key];
    // Whether key_name is read through the view, and whether its removal (reserve_data without
    // preserve_key) can be an edit: a last part that is an array index would be spliced out.
    const byView = accessor === undefined || viewable(accessor);
    const removeByEdit = byView && typeof path[path.length - 1] === 'string';
    const removeKey: Edit = { op: 'remove', path };
    // The top-level key that removal takes away (a nested key_name leaves its top-level key).
    const removedTop = !preserve && path.length === 1 ? (path[0] as string) : undefined;

    /**
     * The parsed fields merged into a record still in bytes (reserve_data), as edits: false when
     * the object path must do it (see the header comment).
     */
    const mergeEdits = (e: WireEvent, v: RecordView, parsed: ParsedRecord): boolean => {
      if (!preserve && !removeByEdit) return false;
      const fields = nestUnder !== undefined ? [nestUnder] : Object.keys(parsed.record);
      for (const k of fields) if (INDEX.test(k)) return false;
      // Keys an object would list first.
      for (let i = 0; i < v.n; i++) if (indexKey(v, i)) return false;
      if (!preserve) e.edit(removeKey);
      // A parsed field the record keeps gives way to the record's (value and place); the others
      // go to the end and then, in their order, to the start.
      let added: Set<string> | undefined;
      for (const k of fields) {
        if (k !== removedTop && v.has(k)) continue;
        e.edit({ op: 'put', key: k, value: nestUnder !== undefined ? parsed.record : parsed.record[k], move: false });
        (added ??= new Set()).add(k);
      }
      if (added !== undefined) {
        const first = added;
        e.edit({ op: 'move', match: (k) => first.has(k), toStart: true });
      }
      return true;
    };

    /** The parsed fields as a new record (no reserve_data): `build` without the original record. */
    const replaceFrom = (v: RecordView, parsed: ParsedRecord): LogRecord => {
      let out: LogRecord = parsed.record;
      if (nestUnder !== undefined) {
        out = {};
        setField(out, nestUnder, parsed.record);
      }
      const top = accessor ? accessor.key : key;
      if (preserve && v.has(top)) keep(out, top, v.getTop(top));
      return out;
    };

    return {
      filter(events: LogEvent[]) {
        let parsedCount = 0;
        let noMatch = 0;
        let missing = 0;
        let notString = 0;
        for (const e of events) {
          // A record still in bytes without the key passes without being decoded or written.
          if (!accessor && e instanceof WireEvent && e.open(view, false) && !e.hasKey(key, view)) {
            missing++;
            continue;
          }
          // A record still in bytes is read through the view (pending edits written first).
          let bytes = false;
          let v: unknown;
          if (byView && e instanceof WireEvent && e.isBytes) {
            try {
              bytes = e.open(view);
              if (bytes) v = view.get(path);
            } catch (err) {
              if (!(err instanceof ViewUnsupported)) throw err;
              bytes = false;
            }
          }
          if (!bytes) v = accessor ? accessor.get(e.record) : hasField(e.record, key) ? e.record[key] : undefined;
          if (v === undefined) {
            missing++;
            continue;
          }
          if (v instanceof Uint8Array) v = decoder.decode(v);
          if (typeof v !== 'string') {
            notString++;
            continue;
          }
          const text = unescapeKey ? unescapeString(v) : v;
          let parsed: ParsedRecord | null = null;
          for (const p of parsers) {
            parsed = p.parse(text);
            if (parsed) break;
          }
          if (!parsed) {
            noMatch++;
            warnNoMatch.warn(
              { tag: e.tag, key_name: key, parsers: config.parser, value: text.length > 200 ? `${text.slice(0, 197)}...` : text },
              'no parser matched the value; record passed unchanged',
            );
            continue;
          }
          parsedCount++;
          if (parsed.time && (parsed.time.sec !== 0 || parsed.time.nsec !== 0)) e.time = parsed.time;
          if (parsed.timeError || parsed.castErrors) {
            if (parsed.timeError) timeErrors.inc();
            if (parsed.castErrors) castErrors.inc();
            warnField.warn({ tag: e.tag, time_error: parsed.timeError, cast_errors: parsed.castErrors }, 'parsed record with unreadable fields (kept as text)');
          }
          // The view again at this record (a parser may have read another one through it).
          if (bytes) bytes = (e as WireEvent).open(view);
          if (!bytes) e.record = build(e.record, parsed);
          else if (!reserve) e.record = replaceFrom(view, parsed);
          else if (!mergeEdits(e as WireEvent, view, parsed)) e.record = build(e.record, parsed);
        }
        if (parsedCount) m.parsed.inc(parsedCount);
        if (noMatch) m.no_match.inc(noMatch);
        if (missing) m.missing_key.inc(missing);
        if (notString) m.not_string.inc(notString);
        return events;
      },
    };
  },
});
