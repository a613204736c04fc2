import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { compileRegex, regexError, RegexError } from '../../../src/core/safe-regex.js';

test('Ruby named groups become fields in pattern order', () => {
  const re = compileRegex("^(?<host>[^ ]*) (?<user>[^ ]*) (?'rest'.*)$");
  assert.deepEqual(re.groupNames, ['host', 'user', 'rest']);
  assert.equal(re.groupCount, 3);
  const m = re.exec('10.0.0.1 bob the rest');
  assert.deepEqual({ ...m!.groups }, { host: '10.0.0.1', user: 'bob', rest: 'the rest' });
});

test('\\h is a hex digit in Ruby syntax (not horizontal space), \\H its complement', () => {
  const re = compileRegex('^(?<id>\\h+)(?<tail>\\H*)$');
  assert.deepEqual({ ...re.exec('00ffAAzz')!.groups }, { id: '00ffAA', tail: 'zz' });
  assert.equal(compileRegex('^[\\h-]+$').test('dead-beef'), true);
  assert.equal(compileRegex('^\\h+$').test('xyz'), false);
});

test('^ and $ match at line boundaries, as in Ruby; \\A and \\z anchor the whole text', () => {
  assert.equal(compileRegex('^b$').test('a\nb\nc'), true);
  assert.equal(compileRegex('\\Ab\\z').test('a\nb\nc'), false);
  assert.equal(compileRegex('\\Ab\\z').test('b'), true);
  assert.equal(compileRegex('b\\Z').test('ab\n'), true);
  // plain syntax: ^ $ anchor the text, as in JavaScript.
  assert.equal(compileRegex('^b$', { syntax: 'plain' }).test('a\nb\nc'), false);
});

test('/pattern/opts: m lets . match a newline (Ruby), i ignores case, x allows spaces and comments', () => {
  assert.equal(compileRegex('^a.b$').test('a\nb'), false);
  assert.equal(compileRegex('/^a.b$/m').test('a\nb'), true);
  assert.equal(compileRegex('/abc/i').test('xABCx'), true);
  assert.equal(compileRegex('/ a b  # comment\n c /x').test('abc'), true);
  assert.equal(compileRegex('(?x) a \\  b').test('a b'), true);
  assert.equal(compileRegex('(?i)abc').test('ABC'), true);
  assert.equal(compileRegex('(?m:a.b)').test('a\nb'), true);
  // A path that merely starts with / is a pattern, not /pattern/opts.
  assert.equal(compileRegex('/var/log/.*').test('/var/log/x'), true);
  assert.equal(compileRegex('abc', { ignoreCase: true }).test('ABC'), true);
});

test('POSIX brackets, (?# comments) and bounded repetition pass through', () => {
  assert.equal(compileRegex('^[[:alpha:]]+(?# letters)\\d{2,3}$').test('abc123'), true);
});

test('constructs that need backtracking are rejected with the construct named', () => {
  const cases: Array<[string, RegExp]> = [
    ['(a)\\1', /backreference \\1/],
    ['(?<n>a)\\k<n>', /backreference \\k<name>/],
    ['a(?=b)', /lookahead/],
    ['a(?!b)', /negative lookahead/],
    ['(?<=a)b', /lookbehind/],
    ['(?<!a)b', /negative lookbehind/],
    ['(?>a+)b', /atomic group/],
    ['a++b', /possessive quantifier/],
    ['a{2}+', /possessive quantifier/],
    ['\\Ga', /\\G/],
  ];
  for (const [p, msg] of cases) {
    assert.throws(
      () => compileRegex(p),
      (e: unknown) => e instanceof RegexError && msg.test(e.message) && /RE2/.test(e.message),
      p,
    );
  }
});

test('lazy quantifiers and escaped pluses are not taken for possessive quantifiers', () => {
  assert.equal(compileRegex('^a+?b$').test('aab'), true);
  assert.equal(compileRegex('^\\++$').test('+++'), true);
  assert.equal(compileRegex('^a*?$').test('aa'), true);
});

test("invalid patterns give RE2's reason; duplicate and bad group names are named", () => {
  assert.match(regexError('(unclosed') ?? '', /invalid regular expression: .*missing \)/);
  assert.match(regexError('[a-') ?? '', /unterminated character class|missing \]/);
  assert.match(regexError('(?<a>x)(?<a>y)') ?? '', /duplicate group name 'a'/);
  assert.match(regexError('(?<user-name>x)') ?? '', /group name 'user-name'/);
  assert.match(regexError('a{1,5000}') ?? '', /repetition/);
  assert.equal(regexError('^ok$'), undefined);
});

test('a catastrophic-backtracking pattern returns promptly on a hostile line', async () => {
  // Run in a worker: if matching backtracked exponentially, the worker would never answer and
  // the timeout below fails the test instead of hanging it.
  const url = new URL('../../../src/core/safe-regex.js', import.meta.url).href;
  const worker = new Worker(
    `import(${JSON.stringify(url)}).then(({ compileRegex }) => {
       const { parentPort } = require('node:worker_threads');
       const hostile = 'a'.repeat(100000) + '!';
       const results = [
         compileRegex('(a+)+$').test(hostile),
         compileRegex('^(\\\\w+\\\\s?)*$').test('word '.repeat(20000) + '!'),
         compileRegex('(x+x+)+y').test('x'.repeat(50000)),
       ];
       parentPort.postMessage(results);
     });`,
    { eval: true },
  );
  try {
    const result = await new Promise<boolean[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('regex matching did not finish within 20 s')), 20_000);
      worker.once('message', (m: boolean[]) => {
        clearTimeout(timer);
        resolve(m);
      });
      worker.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    assert.deepEqual(result, [false, false, false]);
  } finally {
    await worker.terminate();
  }
});
