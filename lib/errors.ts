/** Thrown when a disposed tensor is used. `op` names the operation that was attempted. */
export class DisposedError extends Error {
  readonly op: string;
  constructor(op: string, what = 'tensor') {
    super(`${op}: ${what} was disposed`);
    this.name = 'DisposedError';
    this.op = op;
  }
}
