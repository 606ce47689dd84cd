/**
 * The API client against a real flowdapt server: `tests/test_extension_unit.py` starts Jupyter with
 * a token and a non-root base URL and passes them in FLOWDAPT_TEST_URL / FLOWDAPT_TEST_TOKEN.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ServerConnection } from '@jupyterlab/services';
import { beforeAll, describe, expect, it } from 'vitest';

import { FlowdaptAPI, FlowdaptAPIError, OPERATIONS } from '../src/api';

const SERVER = process.env.FLOWDAPT_TEST_URL;
const TOKEN = process.env.FLOWDAPT_TEST_TOKEN ?? '';
const HERE = dirname(fileURLToPath(import.meta.url));
const document = JSON.parse(readFileSync(join(HERE, '..', 'openapi.json'), 'utf-8'));

function api(token = TOKEN, baseUrl = SERVER!): FlowdaptAPI {
  return new FlowdaptAPI(ServerConnection.makeSettings({ baseUrl, wsUrl: baseUrl.replace(/^http/, 'ws'), token,
                                                         appendToken: false }));
}

function operationIds(doc: any): string[] {
  return Object.values(doc.paths).flatMap((item: any) => Object.values(item).map((op: any) => op.operationId)).sort();
}

const workflow = (name: string, stages: object[] = [{ name: 'greet', target: 'tests.stages.greet' }]) =>
  ({ kind: 'workflow', metadata: { name }, spec: { stages } });

describe('the typed client matches the OpenAPI document', () => {
  it('has a method for every operation and nothing else', () => {
    expect(Object.keys(OPERATIONS).sort()).toEqual(operationIds(document));
    for (const method of Object.values(OPERATIONS)) {
      expect(typeof (FlowdaptAPI.prototype as any)[method]).toBe('function');
    }
  });

  it('uses types generated from the committed document (jlpm generate:types)', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'flowdapt-types-')), 'schema.d.ts');
    const cli = join(HERE, '..', 'node_modules', 'openapi-typescript', 'bin', 'cli.js');
    execFileSync(process.execPath, [cli, join(HERE, '..', 'openapi.json'), '-o', out], { stdio: 'pipe' });
    expect(readFileSync(out, 'utf-8')).toBe(readFileSync(join(HERE, '..', 'src', 'schema.d.ts'), 'utf-8'));
  });
});

describe.skipIf(!SERVER)('the client against a server', () => {
  const client = api();

  beforeAll(async () => {
    for (const name of ['hello', 'nap', 'from-yaml', 'notebook-double']) {
      await client.delete('workflows', name).catch(() => undefined);
    }
  });

  it('lists the plugins installed on the server', async () => {
    expect((await client.plugins()).map(plugin => plugin.name)).toContain('example');
    const plugin = await client.plugin('example');
    expect(plugin.extensions.executors).toEqual(['example-serial']);
    expect(plugin.stages).toContain('flowdapt_example_plugin.stages.forecast');
  });

  it('is served the document its types come from, under the base URL', async () => {
    const served = await client.openapi();
    expect(served.servers).toEqual([{ url: new URL(client.apiUrl).pathname }]);
    expect({ ...served, servers: null }).toEqual({ ...document, servers: null });
    expect((await client.root()).app).toBe('flowdapt');
  });

  it('needs the token and the base URL', async () => {
    const error = await api('nope').status().catch(e => e);
    expect(error).toBeInstanceOf(FlowdaptAPIError);
    expect(error.status).toBe(403);
    const wrongBase = await api(TOKEN, SERVER!.replace(/[^/]+\/$/, '')).status().catch(e => e);
    expect(wrongBase.status).toBe(404);
  });

  it('creates, reads, replaces, lists and deletes resources, in JSON and YAML', async () => {
    const created = await client.create('workflows', workflow('hello'));
    expect(created.metadata.name).toBe('hello');
    const yaml = await client.getYaml('workflows', 'hello');
    expect(yaml).toContain('target: tests.stages.greet');
    const replaced = await client.replace('workflows', 'hello', workflow('hello', [{ name: 'hi', target: 'tests.stages.greet' }]));
    expect(replaced.spec.stages[0].name).toBe('hi');
    expect((await client.list('workflows')).map(w => w.metadata.name)).toContain('hello');
    const [applied] = await client.applyYaml(yaml.replace('name: hello', 'name: from-yaml'));
    expect([applied.resource.metadata.name, applied.outcome]).toEqual(['from-yaml', 'created']);
    expect((await client.apply([workflow('from-yaml')]))[0].outcome).toBe('unchanged');
    expect((await client.apply([workflow('from-yaml', [{ name: 'x', target: 'tests.stages.greet' }])]))[0].outcome).toBe('updated');
    await client.delete('workflows', 'from-yaml');
    const missing = await client.get('workflows', 'from-yaml').catch(e => e);
    expect([missing.status, missing.detail]).toEqual([404, "workflow 'from-yaml' not found"]);
  });

  it('answers bad resources with the one-line message and stores nothing', async () => {
    const bad = workflow('bad', [{ name: 'a', target: 'tests.stages.greet', depends_on: ['ghost'] }]);
    const error = await client.apply([workflow('fine'), bad]).catch(e => e);
    expect(error.status).toBe(422);
    expect(error.detail).toMatch(/ghost/);
    expect(error.detail).not.toContain('\n');
    expect((await client.list('workflows')).map(w => w.metadata.name)).not.toContain('fine');
  });

  it('describes the run input, runs, lists, waits for and deletes runs', async () => {
    const inputs = await client.workflowInputs('hello');
    expect(inputs.fields.map(field => [field.name, field.type, field.required])).toEqual([
      ['name', 'string', true], ['greeting', 'string', false]]);
    const run = await client.run('hello', { name: 'ada' }, { source: 'manual' });
    expect([run.state, run.result, run.source]).toEqual(['finished', 'hello ada', 'manual']);
    expect((await client.getRun(run.name)).uid).toBe(run.uid);
    expect((await client.listRuns({ workflow: 'hello', source: 'manual', limit: 5 }))[0].uid).toBe(run.uid);
    expect((await client.latestRuns()).find(r => r.workflow === 'hello')?.uid).toBe(run.uid);
    expect((await client.stageAttempts(run.uid)).map(a => [a.stage, a.state])).toEqual([['hi', 'finished']]);
    const summary = await client.stats('summary', { workflow: 'hello' });
    expect([summary.runs, summary.finished]).toEqual([1, 1]);
    expect((await client.stats('version')).runs).toBeGreaterThanOrEqual(1);
    expect((await client.deleteRun(run.uid)).uid).toBe(run.uid);
  });

  it('runs a run again and resumes one; reads and records log lines; clears the cache', async () => {
    await client.create('workflows', workflow('chatty', [{ name: 'count', target: 'tests.stages.counted_numbers' },
      { name: 'odd', target: 'tests.stages.fail_on_odd', type: 'parameterized', depends_on: ['count'] },
      { name: 'boom', target: 'tests.stages.fail', depends_on: ['odd'] }]));
    const run = await client.run('chatty', { n: 2 });
    expect(run.state).toBe('failed');
    const lines = await client.runLogs(run.uid, { stage: 'count' });
    expect(lines.map(line => [line.stream, line.level, line.message])).toEqual([
      ['stdout', null, 'counting to 2'], ['log', 'WARNING', 'odd numbers will fail']]);
    expect(await client.runLogs(run.uid, { after: lines[lines.length - 1].seq, stage: 'count' })).toEqual([]);
    const again = await client.rerun(run.uid);
    expect([again.state, again.rerun_of, again.input]).toEqual(['failed', run.uid, { n: 2 }]);
    const resumed = await client.resume(again.uid);
    expect([resumed.state, resumed.resumed_from]).toEqual(['failed', again.uid]);
    expect((await client.rerun('no-such-run').catch(e => e)).status).toBe(404);
    // A run another process runs (a kernel's) is reported with its lines.
    const reported = await client.recordRun({ ...run, uid: crypto.randomUUID().replace(/-/g, ''), name: '', source: 'notebook' });
    expect(await client.recordRunLogs(reported.uid, [{ ...lines[0], message: 'from a kernel' }])).toEqual({ recorded: 1 });
    expect((await client.runLogs(reported.uid)).map(line => [line.stage, line.message])).toEqual([['count', 'from a kernel']]);
    expect(await client.clearCache({ workflow: 'chatty' })).toBeTypeOf('object');
  });

  it('cancels a running run', async () => {
    await client.create('workflows', workflow('nap', [{ name: 'nap', target: 'tests.stages.sleep_for' }]));
    const run = await client.run('nap', { seconds: 3 }, { wait: false }); // its thread sleeps on after the cancel
    expect(['pending', 'running']).toContain(run.state);
    await client.cancelRun(run.uid);
    let state = run.state;
    for (let i = 0; i < 100 && !['cancelled', 'failed'].includes(state); i++) {
      await new Promise(resolve => setTimeout(resolve, 100));
      state = (await client.getRun(run.uid)).state;
    }
    expect(state).toBe('cancelled');
    const again = await client.cancelRun(run.uid).catch(e => e);
    expect(again.status).toBe(409);
  });

  it('creates a notebook workflow and reads its output notebook', async () => {
    const { workflow: made, inputs } = await client.notebookWorkflow('double.ipynb');
    expect(made.metadata.name).toBe('notebook-double');
    expect(inputs.fields.map(field => [field.name, field.default])).toEqual([['n', 1]]);
    const run = await client.run('notebook-double', { n: 4 });
    expect(run.result).toBe(8);
    const notebook = await client.outputNotebook(run.uid, 'double');
    expect(notebook.nbformat).toBe(4);
    const none = await client.outputNotebook(run.uid, 'nope').catch(e => e);
    expect(none.status).toBe(404);
    const outside = await client.notebookWorkflow('../x.ipynb').catch(e => e);
    expect(outside.status).toBe(422);
  });

  it('switches triggers and reads their firings; publishes events; reads the status; drains', async () => {
    const trigger = { kind: 'trigger_rule', metadata: { name: 'on-ping' }, spec: {
      type: 'condition', rule: { eq: [{ var: 'type' }, 'ping'] },
      action: { target: 'run_workflow', parameters: { workflow: 'hello', input: { name: 'event' } } } } };
    await client.apply([trigger]);
    expect((await client.setTriggerEnabled('on-ping', false)).status.enabled).toBe(false);
    expect((await client.setTriggerEnabled('on-ping', true)).status.enabled).toBe(true);
    await client.publish({ type: 'ping', data: null, source: 'test', channel: 'events' });
    let firings = await client.triggerFirings('on-ping');
    for (let i = 0; i < 50 && !firings.length; i++) {
      await new Promise(resolve => setTimeout(resolve, 100));
      firings = await client.triggerFirings('on-ping');
    }
    expect(firings[0]).toMatchObject({ trigger: 'on-ping', error: null });
    await client.delete('triggers', 'on-ping');
    const status = await client.status();
    expect(status).toMatchObject({ app: 'flowdapt', draining: false });
    expect(Array.isArray(status.dashboards)).toBe(true);
    expect(await client.drain(5)).toMatchObject({ draining: true });
    expect((await client.run('hello', { name: 'x' }).catch(e => e)).status).toBe(503);
    expect(await client.undrain()).toMatchObject({ draining: false });
  });
});
