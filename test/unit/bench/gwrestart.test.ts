import { describe, it, expect } from 'vitest';
import { formatGatewayRestart, parseGatewayRestartOptions, restartStats, type GatewayRestartResult } from '../../../src/bench/gwrestart.js';
import { emptyGatewayKill } from '../../../src/lab/gwkill.js';
import { UsageError } from '../../../src/util/errors.js';

describe('scripts/bench gateway-restart', () => {
  it('options: 5 upload drills of 400 MB; every flag read; bad values refused', () => {
    expect(parseGatewayRestartOptions([])).toEqual({ drills: 5, scenario: 'upload', bytes: 4e8, seed: 1, output: 'human' });
    expect(parseGatewayRestartOptions(['--drills', '7', '--scenario', 'download', '--bytes', '1000000000', '--seed', '9', '--markdown']))
      .toEqual({ drills: 7, scenario: 'download', bytes: 1e9, seed: 9, output: 'markdown' });
    expect(parseGatewayRestartOptions(['-h'])).toBe('help');
    for (const argv of [['--drills', '0'], ['--scenario', 'nope'], ['--bytes', '1k'], ['--json', '--markdown']]) {
      expect(() => parseGatewayRestartOptions(argv), argv.join(' ')).toThrow(UsageError);
    }
  });

  it('p50 (nearest rank) and max over the drills that measured it; a drill that never resumed is left out', () => {
    expect(restartStats([300, -1, 500, 200, 400])).toEqual({ n: 4, p50: 300, max: 500 });
    expect(restartStats([-1])).toBeNull();
  });

  it('the table: one row per drill, its failure beside its figure', () => {
    const k = (all: number) => ({ ...emptyGatewayKill('gateway-kill'), killedAt: 1, readyMs: 350, firstResumeMs: all, allResumedMs: all, allCaughtUpMs: all + 100 });
    const r: GatewayRestartResult = {
      date: '2026-12-05T00:00:00.000Z', machine: 'test CPU', command: 'scripts/bench gateway-restart', options: { drills: 2, scenario: 'upload', bytes: 4e8, seed: 1 },
      samples: [
        { seed: 1, lab: 'a', ok: true, kill: k(420), failures: [] },
        { seed: 2, lab: 'b', ok: false, kill: k(610), failures: ['gateway-kill: no adoption'] },
      ],
      allResumedMs: restartStats([420, 610]), allCaughtUpMs: restartStats([520, 710]), readyMs: restartStats([350, 350]), failures: ['drill 2 (seed 2): 1 check(s) failed'], durationS: 30,
    };
    const text = formatGatewayRestart(r, true);
    expect(text).toContain('| 1 | 1 | 350 ms | 420 ms | 420 ms | 520 ms | held |');
    expect(text).toContain('| 2 | 2 | 350 ms | 610 ms | 610 ms | 710 ms | FAILED: gateway-kill: no adoption |');
    expect(text).toContain('From the kill to data flowing again (every connection): p50 420 ms, max 610 ms (2 drills); the aim is ≤ 500 ms.');
  });
});
