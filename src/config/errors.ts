/** A position in a configuration file, 1-based line and column. */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

export function formatPos(pos: SourcePos | undefined): string {
  return pos ? `${pos.file}:${pos.line}:${pos.col}` : '<config>';
}

/**
 * A configuration error a user sees: where (file:line:col), which option, what was found,
 * what is expected.
 */
export class ConfigError extends Error {
  constructor(
    message: string,
    public readonly pos?: SourcePos,
    public readonly option?: string,
  ) {
    super(`${formatPos(pos)}: ${option ? `${option}: ` : ''}${message}`);
    this.name = 'ConfigError';
  }
}

/** Several configuration errors reported at once. */
export class ConfigErrors extends Error {
  constructor(public readonly errors: ConfigError[]) {
    super(errors.map((e) => e.message).join('\n'));
    this.name = 'ConfigErrors';
  }
}
