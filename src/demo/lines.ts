/**
 * Splits a byte stream into '\n'-terminated lines without copying payload bytes more than
 * once: a line that lies inside one chunk is a subarray of it; only a line spanning chunks
 * is concatenated. The terminator is not part of the line.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  /** @param maxLine longest line accepted (bytes, without '\n'); longer -> push() returns false. */
  constructor(private readonly maxLine = 1 << 20) {}

  /** Bytes held of an unterminated line. */
  get buffered(): number {
    return this.pendingBytes;
  }

  /**
   * Feeds a chunk; calls onLine for each complete line, in order. Returns false (and stops)
   * when a line exceeds maxLine or onLine returns false.
   */
  push(chunk: Buffer, onLine: (line: Buffer) => boolean | void): boolean {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      let line = chunk.subarray(start, nl);
      if (this.pendingBytes > 0) {
        this.pending.push(line);
        line = Buffer.concat(this.pending, this.pendingBytes + line.length);
        this.pending = [];
        this.pendingBytes = 0;
      }
      start = nl + 1;
      if (line.length > this.maxLine) return false;
      if (onLine(line) === false) return false;
    }
    if (start < chunk.length) {
      this.pending.push(chunk.subarray(start));
      this.pendingBytes += chunk.length - start;
      if (this.pendingBytes > this.maxLine) return false;
    }
    return true;
  }
}
