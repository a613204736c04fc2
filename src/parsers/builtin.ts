/**
 * Parsers available without a parsers_file: the definitions of Fluent Bit's conf/parsers.conf,
 * which its container images load by default, so `parser: json` or `parser: nginx` work as they
 * do there. A parser of the same name in `parsers:` or a parsers_file replaces the built-in one.
 *
 * docker: Fluent Bit's definition adds Decode_Field_As escaped decoders for log and stream;
 * logwarden has no decoders, so the built-in docker parser is plain json with the time.
 */
import type { RawSection } from '../config/schema.js';

const APACHE_TIME = '%d/%b/%Y:%H:%M:%S %z';

export const BUILTIN_PARSERS: Array<Record<string, string>> = [
  {
    name: 'apache',
    format: 'regex',
    regex:
      '^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] "(?<method>\\S+)(?: +(?<path>[^\\"]*?)(?: +\\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\\"]*)" "(?<agent>[^\\"]*)")?$',
    time_key: 'time',
    time_format: APACHE_TIME,
  },
  {
    name: 'apache2',
    format: 'regex',
    regex: '^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] "(?<method>\\S+)(?: +(?<path>[^ ]*) +\\S*)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\\"]*)" "(?<agent>.*)")?$',
    time_key: 'time',
    time_format: APACHE_TIME,
  },
  {
    name: 'apache_error',
    format: 'regex',
    regex: '^\\[[^ ]* (?<time>[^\\]]*)\\] \\[(?<level>[^\\]]*)\\](?: \\[pid (?<pid>[^\\]]*)\\])?( \\[client (?<client>[^\\]]*)\\])? (?<message>.*)$',
  },
  {
    name: 'nginx',
    format: 'regex',
    regex:
      '^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] "(?<method>\\S+)(?: +(?<path>[^\\"]*?)(?: +\\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\\"]*)" "(?<agent>[^\\"]*)")?$',
    time_key: 'time',
    time_format: APACHE_TIME,
  },
  {
    name: 'k8s-nginx-ingress',
    format: 'regex',
    regex:
      '^(?<host>[^ ]*) - \\[(?<real_ip>[^ ]*)\\] - (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] "(?<method>\\S+)(?: +(?<path>[^\\"]*?)(?: +\\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*) "(?<referer>[^\\"]*)" "(?<agent>[^\\"]*)" (?<request_length>[^ ]*) (?<request_time>[^ ]*) \\[(?<proxy_upstream_name>[^ ]*)\\] (?<upstream_addr>[^ ]*) (?<upstream_response_length>[^ ]*) (?<upstream_response_time>[^ ]*) (?<upstream_status>[^ ]*) (?<last>[^$]*)',
    time_key: 'time',
    time_format: APACHE_TIME,
  },
  { name: 'json', format: 'json', time_key: 'time', time_format: APACHE_TIME },
  { name: 'docker', format: 'json', time_key: 'time', time_format: '%Y-%m-%dT%H:%M:%S.%L', time_keep: 'on' },
  {
    name: 'docker-daemon',
    format: 'regex',
    regex: 'time="(?<time>[^ ]*)" level=(?<level>[^ ]*) msg="(?<msg>[^ ].*)"',
    time_key: 'time',
    time_format: '%Y-%m-%dT%H:%M:%S.%L',
    time_keep: 'on',
  },
  {
    name: 'syslog-rfc5424',
    format: 'regex',
    regex: '^\\<(?<pri>[0-9]{1,5})\\>1 (?<time>[^ ]+) (?<host>[^ ]+) (?<ident>[^ ]+) (?<pid>[-0-9]+) (?<msgid>[^ ]+) (?<extradata>(\\[(.*)\\]|-)) (?<message>.+)$',
    time_key: 'time',
    time_format: '%Y-%m-%dT%H:%M:%S.%L',
    time_keep: 'on',
  },
  {
    name: 'syslog-rfc3164-local',
    format: 'regex',
    regex: '^\\<(?<pri>[0-9]+)\\>(?<time>[^ ]* {1,2}[^ ]* [^ ]*) (?<ident>[a-zA-Z0-9_\\/\\.\\-]*)(?:\\[(?<pid>[0-9]+)\\])?(?:[^\\:]*\\:)? *(?<message>.*)$',
    time_key: 'time',
    time_format: '%b %d %H:%M:%S',
    time_keep: 'on',
  },
  {
    name: 'syslog-rfc3164',
    format: 'regex',
    regex: '/^\\<(?<pri>[0-9]+)\\>(?<time>[^ ]* {1,2}[^ ]* [^ ]*) (?<host>[^ ]*) (?<ident>[a-zA-Z0-9_\\/\\.\\-]*)(?:\\[(?<pid>[0-9]+)\\])?(?:[^\\:]*\\:)? *(?<message>.*)$/',
    time_key: 'time',
    time_format: '%b %d %H:%M:%S',
    time_keep: 'on',
  },
  {
    name: 'mongodb',
    format: 'regex',
    regex: '^(?<time>[^ ]*)\\s+(?<severity>\\w)\\s+(?<component>[^ ]+)\\s+\\[(?<context>[^\\]]+)]\\s+(?<message>.*?) *(?<ms>(\\d+))?(:?ms)?$',
    time_format: '%Y-%m-%dT%H:%M:%S.%L',
    time_keep: 'on',
    time_key: 'time',
  },
  {
    name: 'cri',
    format: 'regex',
    regex: '^(?<time>[^ ]+) (?<stream>stdout|stderr) (?<logtag>[^ ]*) (?<message>.*)$',
    time_key: 'time',
    time_format: '%Y-%m-%dT%H:%M:%S.%L%z',
  },
];

/** The built-in definitions as sections, positioned at `<builtin:NAME>`. */
export function builtinSections(): RawSection[] {
  return BUILTIN_PARSERS.map((def) => {
    const pos = { file: `<builtin:${def.name}>`, line: 1, col: 1 };
    const section: RawSection = { values: Object.create(null), keyPos: Object.create(null), valuePos: Object.create(null), pos, baseDir: '.' };
    for (const [k, v] of Object.entries(def)) {
      section.values[k] = v;
      section.keyPos[k] = pos;
      section.valuePos[k] = pos;
    }
    return section;
  });
}
