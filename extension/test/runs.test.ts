import { describe, expect, it } from 'vitest';

import type { WorkflowRun } from '../src/api';
import type { ILiveEvent } from '../src/live';
import { RunsModel } from '../src/model/runs';

function run(uid: string, workflow = 'w', state: WorkflowRun['state'] = 'finished', source: WorkflowRun['source'] = 'api'): WorkflowRun {
  return { kind: 'workflow_run', uid, name: `run-${uid}`, workflow, source, state, executor: 'local', namespace: 'default',
           input: {}, started_at: '2026-01-01T00:00:00Z', finished_at: null, result: null, error: null, stages: [] };
}

function live(uid: string, kind: ILiveEvent['kind'], state: WorkflowRun['state'], stage?: object, workflow = 'w'): ILiveEvent {
  return { kind, seq: 1, boot: 'b', time: 1767225600,
           run: { uid, name: `run-${uid}`, workflow, state, source: 'manual', executor: 'local', namespace: 'default' },
           stage: stage as any };
}

function stage(name: string, state: string, done?: number, total?: number) {
  return { name, type: 'parameterized', state, attempts: 1, started_at: null, finished_at: null, error: null,
           items_total: total ?? null, items_done: done ?? 0, items_failed: 0, item_failures: [], output_notebook: null };
}

describe('the runs list', () => {
  it('keeps pages newest first without repeating runs that moved between pages', () => {
    const model = new RunsModel();
    model.reset([run('c'), run('b')], {}, 2);
    expect(model.hasMore).toBe(true);
    model.append([run('b'), run('a')], 2);
    expect(model.rows.map(row => row.uid)).toEqual(['c', 'b', 'a']);
    model.append([], 2);
    expect(model.hasMore).toBe(false);
  });

  it('puts a new run on top and follows its states and item progress live', () => {
    const model = new RunsModel();
    model.reset([run('old')], {}, 50);
    let changes = 0;
    model.changed.connect(() => changes++);
    model.apply(live('new', 'run', 'running'));
    model.apply(live('new', 'progress', 'running', stage('square', 'running', 3, 10)));
    expect(model.rows[0]).toMatchObject({ uid: 'new', state: 'running', progress: { done: 3, total: 10 } });
    expect(model.rows[0].started_at).toBe('2026-01-01T00:00:00.000Z');
    const before = model.rows[1];
    model.apply(live('new', 'run', 'finished'));
    expect(model.rows[0]).toMatchObject({ state: 'finished', progress: null, finished_at: '2026-01-01T00:00:00.000Z' });
    expect(model.rows[1]).toBe(before); // untouched rows keep their identity: they do not re-render
    expect(changes).toBe(3);
  });

  it('keeps to its filters as states change', () => {
    const model = new RunsModel();
    model.reset([], { state: 'running', workflow: 'w' }, 50);
    model.apply(live('x', 'run', 'running', undefined, 'other'));
    model.apply(live('y', 'run', 'running'));
    expect(model.rows.map(row => row.uid)).toEqual(['y']);
    const row = model.apply(live('y', 'run', 'failed'));
    expect(row?.state).toBe('failed');
    expect(model.rows).toEqual([]);
  });

  it('records the error of a failed run', () => {
    const model = new RunsModel();
    model.reset([], {}, 50);
    const failed = live('z', 'run', 'failed');
    failed.run!.error = { type: 'ValueError', message: 'bad', stage: 'train' };
    model.apply(failed);
    expect(model.get('z')?.error).toEqual({ type: 'ValueError', message: 'bad', stage: 'train' });
  });
});
