/**
 * The Falco condition language, parsed as libsinsp's filter parser does
 * (userspace/libsinsp/filter/parser.cpp): the same grammar, tokens, operator spellings,
 * string escapes and error messages, producing an AST with positions.
 *
 *   Expr      ::= OrExpr
 *   OrExpr    ::= AndExpr ('or' (' ' AndExpr | '(' Expr ')'))*
 *   AndExpr   ::= NotExpr ('and' (' ' NotExpr | '(' Expr ')'))*
 *   NotExpr   ::= ('not ')* ('not(' Expr ')' | Check)
 *   Check     ::= Field Condition | Transformer Condition | Identifier | '(' Expr ')'
 *   Condition ::= 'exists' | NumOp (Number | Transformer | val(Field))
 *               | StrOp (String | Transformer | val(Field)) | ListOp (List | Identifier | Transformer | val(Field))
 */

export interface Pos {
  /** 0-based offset in the condition text. */
  idx: number;
  /** 1-based line and column inside the condition text. */
  line: number;
  col: number;
}

export interface FieldRef {
  kind: 'field';
  name: string;
  /** The text inside `[...]`, if any. */
  arg?: string;
  pos: Pos;
}

export interface TransformerRef {
  kind: 'transformer';
  /** tolower, toupper, b64, basename, len, join, or `val` (right-hand side only). */
  name: string;
  args: Operand[];
  pos: Pos;
}

export interface StringLiteral {
  kind: 'value';
  value: string;
  /** Quoted text is always a literal; a bare word may name a list. */
  quoted: boolean;
  pos: Pos;
}

export type Operand = FieldRef | TransformerRef | StringLiteral;

export interface ListLiteral {
  kind: 'list';
  items: StringLiteral[];
  pos: Pos;
}

export type Expr =
  | { kind: 'and'; children: Expr[]; pos: Pos }
  | { kind: 'or'; children: Expr[]; pos: Pos }
  | { kind: 'not'; child: Expr; pos: Pos }
  | { kind: 'ident'; name: string; pos: Pos }
  | { kind: 'unary'; left: FieldRef | TransformerRef; op: 'exists'; pos: Pos }
  | { kind: 'binary'; left: FieldRef | TransformerRef; op: string; right: StringLiteral | ListLiteral | TransformerRef; pos: Pos };

export class ConditionSyntaxError extends Error {
  constructor(
    message: string,
    readonly pos: Pos,
  ) {
    super(message);
    this.name = 'ConditionSyntaxError';
  }
}

export const UNARY_OPS = ['exists'] as const;
export const NUM_OPS = ['<=', '<', '>=', '>'] as const;
// By libsinsp's convention a trailing space means "must be followed by a blank".
const STR_OPS = ['==', '=', '!=', 'glob ', 'iglob ', 'contains ', 'icontains ', 'bcontains ', 'startswith ', 'bstartswith ', 'endswith ', 'regex '];
export const LIST_OPS = ['intersects', 'in', 'pmatch'] as const;
export const TRANSFORMERS = ['tolower', 'toupper', 'b64', 'basename', 'len', 'join'] as const;

/** Every operator name, as Falco lists them in errors. */
export const ALL_OPS: readonly string[] = [...UNARY_OPS, ...NUM_OPS, ...STR_OPS.map((s) => s.trim()), ...LIST_OPS];

const RGX_NOTBLANK = /not[ \t\n\r\f\v\b]+/y;
const RGX_IDENTIFIER = /[a-zA-Z]+[a-zA-Z0-9_]*/y;
const RGX_FIELDNAME = /[a-zA-Z]+[a-zA-Z0-9_]*(?:\.[a-zA-Z]+[a-zA-Z0-9_]*)+/y;
const RGX_FIELDARGBARESTR = /[^\][" '\t\n\r\f\v]+/y;
const RGX_HEXNUM = /0[xX][0-9a-fA-F]+/y;
const RGX_NUMBER = /[+-]?[0-9]+\.?[0-9]*(?:[eE][+-][0-9]+)?/y;
const RGX_BARESTR = /[^()"' \t\n\r\f\v=,]+/y;

const MAX_DEPTH = 1000;

function quoteList(list: readonly string[]): string {
  return list.map((s) => `'${s}'`).join(', ');
}

/**
 * libsinsp's unescape_str: `\b \f \n \r \t \\ \/`, the quote that delimits the string, and (as
 * upstream does for compatibility) `\ ` read as a backslash; anything else is an error.
 */
export function unescapeQuoted(raw: string): string {
  let res = '';
  let escaped = false;
  const delim = raw[0];
  for (let i = 1; i < raw.length - 1; i++) {
    const c = raw[i]!;
    if (!escaped) {
      if (c === '\\') escaped = true;
      else res += c;
      continue;
    }
    switch (c) {
      case 'b':
        res += '\b';
        break;
      case 'f':
        res += '\f';
        break;
      case 'n':
        res += '\n';
        break;
      case 'r':
        res += '\r';
        break;
      case 't':
        res += '\t';
        break;
      case ' ':
      case '\\':
        res += '\\';
        break;
      case '/':
        res += '/';
        break;
      case '"':
        if (delim !== '"') throw new Error(`invalid \\" escape in '-quoted string`);
        res += '"';
        break;
      case "'":
        if (delim !== "'") throw new Error(`invalid \\' escape in "-quoted string`);
        res += "'";
        break;
      default:
        throw new Error(`unsupported string escape sequence: \\${c}`);
    }
    escaped = false;
  }
  return res;
}

class Parser {
  private i = 0;
  private line = 1;
  private col = 1;
  private depth = 0;
  private last = '';

  constructor(private readonly s: string) {}

  pos(): Pos {
    return { idx: this.i, line: this.line, col: this.col };
  }

  private fail(msg: string): never {
    throw new ConditionSyntaxError(msg, this.pos());
  }

  private advance(text: string): void {
    for (const c of text) {
      this.col++;
      if (c === '\r' || c === '\n') {
        this.col = 1;
        this.line++;
      }
      this.i += c.length;
    }
  }

  private enter(): void {
    if (++this.depth >= MAX_DEPTH) this.fail(`exceeded max depth limit of ${MAX_DEPTH}`);
  }

  private leave(): void {
    this.depth--;
  }

  private blank(): boolean {
    let found = false;
    for (;;) {
      const c = this.s[this.i];
      if (c === ' ' || c === '\t' || c === '\b' || c === '\r' || c === '\n') {
        this.advance(c);
        found = true;
      } else return found;
    }
  }

  private str(t: string): boolean {
    if (this.s.startsWith(t, this.i)) {
      this.last = t;
      this.advance(t);
      return true;
    }
    return false;
  }

  private rgx(re: RegExp): boolean {
    re.lastIndex = this.i;
    const m = re.exec(this.s);
    if (!m) return false;
    this.last = m[0];
    this.advance(m[0]);
    return true;
  }

  private operator(list: readonly string[]): boolean {
    for (const op of list) {
      if (!op.endsWith(' ')) {
        if (this.str(op)) return true;
        continue;
      }
      if (this.str(op.trimEnd())) return this.blank();
    }
    return false;
  }

  private quoted(): boolean {
    const delim = this.s[this.i];
    if (delim !== '"' && delim !== "'") return false;
    let prev = '\\';
    let j = this.i;
    let tok = '';
    while (j < this.s.length) {
      const c = this.s[j]!;
      if (j > this.i && c === delim && prev !== '\\') {
        tok += c;
        const start = this.pos();
        this.advance(this.s.slice(this.i, j + 1));
        try {
          this.last = unescapeQuoted(tok);
        } catch (e) {
          throw new ConditionSyntaxError((e as Error).message, start);
        }
        return true;
      }
      prev = c;
      tok += c;
      j++;
    }
    return false;
  }

  parse(): Expr {
    if (this.s.length === 0) this.fail('filter input string is empty');
    const res = this.parseOr();
    if (this.i !== this.s.length) this.fail(`unexpected token after '${this.last}', expecting 'or', 'and'`);
    return res;
  }

  private parseOr(): Expr {
    this.enter();
    const pos = this.pos();
    const children: Expr[] = [];
    this.blank();
    children.push(this.parseAnd());
    this.blank();
    while (this.str('or')) {
      if (!this.blank()) {
        if (this.str('(')) children.push(this.parseEmbeddedRemainder());
        else this.fail("expected blank or '(' after 'or'");
      } else children.push(this.parseAnd());
      this.blank();
    }
    this.leave();
    return children.length > 1 ? { kind: 'or', children, pos } : children[0]!;
  }

  private parseAnd(): Expr {
    this.enter();
    const pos = this.pos();
    const children: Expr[] = [];
    this.blank();
    children.push(this.parseNot());
    this.blank();
    while (this.str('and')) {
      if (!this.blank()) {
        if (this.str('(')) children.push(this.parseEmbeddedRemainder());
        else this.fail("expected blank or '(' after 'and'");
      } else children.push(this.parseNot());
      this.blank();
    }
    this.leave();
    return children.length > 1 ? { kind: 'and', children, pos } : children[0]!;
  }

  private parseNot(): Expr {
    this.enter();
    const pos = this.pos();
    let isNot = false;
    this.blank();
    while (this.rgx(RGX_NOTBLANK)) isNot = !isNot;
    let child: Expr;
    if (this.str('not(')) {
      isNot = !isNot;
      child = this.parseEmbeddedRemainder();
    } else child = this.parseCheck();
    this.leave();
    return isNot ? { kind: 'not', child, pos } : child;
  }

  private parseEmbeddedRemainder(): Expr {
    this.enter();
    this.blank();
    const child = this.parseOr();
    this.blank();
    if (!this.str(')')) this.fail("expected a ')' token");
    this.leave();
    return child;
  }

  private parseCheck(): Expr {
    this.enter();
    const pos = this.pos();
    this.blank();
    let res: Expr;
    if (this.str('(')) res = this.parseEmbeddedRemainder();
    else if (this.rgx(RGX_FIELDNAME)) res = this.parseCondition(this.parseFieldRemainder(this.last, pos), pos);
    else if (this.transformerStart()) res = this.parseCondition(this.parseTransformerRemainder(this.last, pos), pos);
    else if (this.rgx(RGX_IDENTIFIER)) res = { kind: 'ident', name: this.last, pos };
    else this.fail("expected a '(' token, a field check, or an identifier");
    this.leave();
    return res;
  }

  private transformerStart(): boolean {
    for (const t of TRANSFORMERS) {
      if (this.str(`${t}(`)) {
        this.last = t;
        this.blank();
        return true;
      }
    }
    return false;
  }

  private parseFieldRemainder(name: string, pos: Pos): FieldRef {
    const field: FieldRef = { kind: 'field', name, pos };
    if (this.str('[')) {
      if (!this.quoted() && !this.rgx(RGX_FIELDARGBARESTR)) this.fail('expected a valid field argument: a quoted string or a bare string');
      field.arg = this.last;
      if (!this.str(']')) this.fail("expected a ']' token");
    }
    return field;
  }

  private parseTransformerRemainder(name: string, pos: Pos): TransformerRef {
    this.enter();
    this.blank();
    const args: Operand[] = [];
    do {
      args.push(this.parseTransformerArg());
      this.blank();
    } while (this.str(','));
    this.blank();
    if (!this.str(')')) this.fail("expected a ')' token closing the transformer");
    this.leave();
    return { kind: 'transformer', name, args, pos };
  }

  private parseTransformerArg(): Operand {
    this.blank();
    const pos = this.pos();
    if (this.rgx(RGX_HEXNUM) || this.rgx(RGX_NUMBER)) return { kind: 'value', value: this.last, quoted: false, pos };
    if (this.quoted()) return { kind: 'value', value: this.last, quoted: true, pos };
    if (this.transformerStart()) return this.parseTransformerRemainder(this.last, pos);
    if (this.rgx(RGX_FIELDNAME)) return this.parseFieldRemainder(this.last, pos);
    this.fail('expected field transformer argument: field, transformer, quoted string, number, or transformer list');
  }

  private parseCondition(left: FieldRef | TransformerRef, pos: Pos): Expr {
    this.enter();
    this.blank();
    let res: Expr;
    if (this.operator(UNARY_OPS)) res = { kind: 'unary', left, op: 'exists', pos };
    else {
      this.blank();
      let op: string;
      let right: StringLiteral | ListLiteral | TransformerRef;
      if (this.operator(NUM_OPS)) {
        op = this.last;
        right = this.parseNumValue();
      } else if (this.operator(STR_OPS)) {
        op = this.last;
        right = this.parseStrValue(false);
      } else if (this.operator(LIST_OPS)) {
        op = this.last;
        right = this.parseListValue();
      } else this.fail(`expected a valid check operator: one of ${quoteList(ALL_OPS)}`);
      res = { kind: 'binary', left, op: op.trim(), right, pos };
    }
    this.leave();
    return res;
  }

  private tryTransformerOrVal(): TransformerRef | undefined {
    this.blank();
    const pos = this.pos();
    if (this.str('val(')) {
      this.blank();
      const fpos = this.pos();
      if (!this.rgx(RGX_FIELDNAME)) this.fail("expected a field within 'val' transformer");
      const field = this.parseFieldRemainder(this.last, fpos);
      this.blank();
      if (!this.str(')')) this.fail("expected a ')' token closing the transformer");
      return { kind: 'transformer', name: 'val', args: [field], pos };
    }
    if (this.transformerStart()) return this.parseTransformerRemainder(this.last, pos);
    return undefined;
  }

  private parseNumValue(): StringLiteral | TransformerRef {
    this.blank();
    const pos = this.pos();
    const t = this.tryTransformerOrVal();
    if (t) return t;
    if (this.rgx(RGX_HEXNUM) || this.rgx(RGX_NUMBER)) return { kind: 'value', value: this.last, quoted: false, pos };
    this.fail(`expected a number value or a field with a valid transformer: ${quoteList(['val', ...TRANSFORMERS])}`);
  }

  private parseStrValue(noTransformer: boolean): StringLiteral | TransformerRef {
    this.blank();
    const pos = this.pos();
    if (!noTransformer) {
      const t = this.tryTransformerOrVal();
      if (t) return t;
    }
    if (this.quoted()) return { kind: 'value', value: this.last, quoted: true, pos };
    if (this.rgx(RGX_BARESTR)) return { kind: 'value', value: this.last, quoted: false, pos };
    if (noTransformer) this.fail('expected a string value');
    this.fail(`expected a string value or a field with a valid transformer: ${quoteList(['val', ...TRANSFORMERS])}`);
  }

  private parseListValue(): StringLiteral | ListLiteral | TransformerRef {
    this.blank();
    const pos = this.pos();
    if (this.str('(')) {
      const items: StringLiteral[] = [];
      this.blank();
      const save = { i: this.i, line: this.line, col: this.col };
      let first: StringLiteral | TransformerRef | undefined;
      try {
        first = this.parseStrValue(true);
      } catch (e) {
        if (!(e instanceof ConditionSyntaxError)) throw e;
        Object.assign(this, save);
      }
      if (first) {
        items.push(first as StringLiteral);
        this.blank();
        while (this.str(',')) {
          items.push(this.parseStrValue(true) as StringLiteral);
          this.blank();
        }
      }
      if (!this.str(')')) this.fail("expected a ')' token");
      return { kind: 'list', items, pos };
    }
    const t = this.tryTransformerOrVal();
    if (t) return t;
    if (this.rgx(RGX_IDENTIFIER)) return { kind: 'value', value: this.last, quoted: false, pos };
    this.fail(`expected a list, an identifier, or a field with a valid transformer: ${quoteList(['val', ...TRANSFORMERS])}`);
  }
}

/** Parses a condition; throws ConditionSyntaxError with the position in the text. */
export function parseCondition(text: string): Expr {
  return new Parser(text).parse();
}
