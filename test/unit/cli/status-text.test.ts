/** `ftcp status` text from a real gateway snapshot (as the control endpoint serves it): the drops line. */
import { describe, it, expect } from 'vitest';
import { statusText } from '../../../src/cli/commands/status.js';
import { Harness, Client, Server, FakeOracle, connect } from '../../support/gateway-harness.js';

/** The snapshot as `ftcp status` receives it: through JSON. */
function fetched(h: Harness): Record<string, any> {
  return JSON.parse(JSON.stringify(h.gw.snapshot())) as Record<string, any>;
}

describe('ftcp status text', () => {
  it('shows the drops by reason: none at first, then the non-zero reasons with their counts', async () => {
    const o = new FakeOracle();
    const h = new Harness({ oracle: o });
    const c = new Client({ isn: 1000, ts: 1 });
    const s = new Server({ isn: 5_000_000, ts: 1 });
    await connect(h, c, s);
    expect(statusText(fetched(h)).split('\n')).toContain('drops by reason: none');
    o.emit('crashed');
    h.drain();
    h.send(s.ackNow(1000), s.ackNow(1000)); // the dead incarnation, twice
    h.send(...c.write(10)); // client data while masked
    const text = statusText(fetched(h));
    const line = text.split('\n').find((l) => l.startsWith('drops by reason: '));
    expect(line).toBe('drops by reason: SERVER_WHILE_MASKED 2, CLIENT_WHILE_MASKED 1');
  });

  it('says whether the gateway reused a TUN and steering left by an earlier one, and counts unknown connections', () => {
    const h = new Harness();
    expect(statusText(fetched(h))).not.toMatch(/^start:/m); // a gateway the CLI did not start says nothing
    h.gw.startState = {
      action: 'reused', restarted: true, starts: 2, stateFile: '/run/ftcp/ftcp0.json',
      reusedState: { record: true, device: true, route: true, blackhole: true, rules: 3, rulesExpected: 3 },
    };
    const text = statusText(fetched(h));
    expect(text).toMatch(/^start: TUN and steering reused \(found: state file yes, device yes, route yes, blackhole yes, rules 3 of 3\); restarted: true; gateway starts on this state: 2;/m);
    expect(text).toMatch(/0 unknown connections \(no SYN seen/);
  });

  it('says which log epoch the gateway holds, or since when it is fenced (the status upcall of a log server\'s client)', async () => {
    const h = new Harness();
    expect(statusText(fetched(h))).not.toMatch(/epoch|FENCED/); // a log without epochs
    h.gw.epoch = 4;
    expect(statusText(fetched(h))).toMatch(/^log epoch 4: this gateway is the log's one writer$/m);
    h.gw.onLogStatus('FAILED', { fenced: 5, reason: 'fenced by epoch 5' });
    const text = statusText(fetched(h));
    expect(text).toMatch(/^FENCED since \d{4}-\d\d-\d\dT[\d:.]+Z: another gateway claimed the log \(epoch 5\); protected traffic is dropped here \(FENCED\) until a restart$/m);
    expect(h.gw.logFailures).toBe(0); // a fence is not a log failure (no passthrough)
    expect(h.gw.south.passthrough).toBe(false);
  });
});
