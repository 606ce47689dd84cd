/**
 * The flowdapt REST API (`{base_url}flowdapt/api/v1/`): one method per operation of the served
 * OpenAPI document. Every request goes through `ServerConnection.makeRequest`, which adds the
 * token or XSRF cookie Jupyter expects; every URL starts at the server settings' base URL.
 * Types come from `schema.d.ts`, generated from that document (`jlpm generate:types`).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { components, operations } from './schema';

type Schemas = components['schemas'];
export type Workflow = Schemas['Workflow'];
export type Config = Schemas['Config'];
export type TriggerRule = Schemas['TriggerRule'];
export type WorkflowRun = Schemas['WorkflowRun'];
export type StageRun = Schemas['StageRun'];
export type StageAttempt = Schemas['StageAttempt'];
export type TriggerFiring = Schemas['TriggerFiring'];
export type ErrorInfo = Schemas['ErrorInfo'];
export type WorkflowInputs = Schemas['WorkflowInputs'];
export type InputField = Schemas['InputField'];
export type EventIn = Schemas['EventIn'];
export type LogLine = Schemas['LogLine'];
export type Plugin = Schemas['Plugin'];
export type RunState = WorkflowRun['state'];
export type RunSource = WorkflowRun['source'];

/** The run-history statistics the server aggregates (the dashboard's data), by view. */
export type StatsView = 'summary' | 'timeline' | 'workflows' | 'daily' | 'errors' | 'active' | 'stages' | 'items' |
  'triggers' | 'version';
type StatsOperation<V extends StatsView> = operations[`stats_${V}`];
type QueryOf<O extends keyof operations> = NonNullable<operations[O]['parameters']['query']>;
export type StatsQuery<V extends StatsView> = NonNullable<StatsOperation<V>['parameters']['query']>;
export type StatsAnswer<V extends StatsView> = StatsOperation<V>['responses'][200]['content']['application/json'];

/** A trigger as served: the resource and its read-only status. */
export type Trigger = TriggerRule & { status: ITriggerStatus };

export interface ITriggerStatus {
  enabled: boolean;
  last_fire_time: string | null;
  next_fire_time: string | null;
}

/** The resource kinds by collection name. */
export interface ICollections {
  workflows: Workflow;
  configs: Config;
  triggers: Trigger;
}
export type Collection = keyof ICollections;

/** A cluster executor's dashboard; `url` is relative to the base URL when `proxied`. */
export interface IDashboard {
  kind: string;
  url: string;
  proxied: boolean;
  target: string;
}

/** `GET status`. */
export interface IServerStatus {
  version: string;
  executor: string;
  running: number;
  queued: number;
  draining: boolean;
  dashboards: IDashboard[];
  [key: string]: unknown;
}

/** The outcome of one resource of `POST apply`. */
export interface IApplied {
  resource: Workflow | Config | Trigger;
  outcome: 'created' | 'updated' | 'unchanged';
}

/** Filters and paging of `GET runs`. */
export interface IRunsQuery {
  workflow?: string;
  state?: RunState;
  source?: RunSource;
  since?: string;
  until?: string;
  limit?: number;
  offset?: number;
}

export interface IRunOptions {
  wait?: boolean;
  namespace?: string;
  executor?: string;
  source?: 'api' | 'manual' | 'notebook';
}

/** An error answered by the server, with its one-line `detail`. */
export class FlowdaptAPIError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string
  ) {
    super(detail);
    this.name = 'FlowdaptAPIError';
  }
}

/** The one line to show for an error: the server's `detail`, else the message. */
export function describeError(error: unknown): string {
  return error instanceof FlowdaptAPIError ? error.detail : error instanceof Error ? error.message : String(error);
}

interface IRequest {
  query?: object;
  body?: unknown;
  yaml?: string;
  accept?: string;
}

/** The flowdapt REST API of one Jupyter server. */
export class FlowdaptAPI {
  constructor(readonly serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  /** The API root URL, under the server's base URL. */
  get apiUrl(): string {
    return URLExt.join(this.serverSettings.baseUrl, 'flowdapt/api/v1');
  }

  root(): Promise<{ app: string; version: string; api_version: string }> {
    return this.request('GET', '');
  }

  openapi(): Promise<Record<string, any>> {
    return this.request('GET', 'openapi.json');
  }

  status(): Promise<IServerStatus> {
    return this.request('GET', 'status');
  }

  /** The plugin packages installed on the server and what each ships. */
  plugins(): Promise<Plugin[]> {
    return this.request('GET', 'plugins');
  }

  plugin(name: string): Promise<Plugin> {
    return this.request('GET', `plugins/${enc(name)}`);
  }

  // -- resources -------------------------------------------------------------------------------
  list<C extends Collection>(collection: C, page: { limit?: number; offset?: number } = {}): Promise<ICollections[C][]> {
    return this.request('GET', collection, { query: { limit: 10000, ...page } });
  }

  get<C extends Collection>(collection: C, id: string): Promise<ICollections[C]> {
    return this.request('GET', `${collection}/${enc(id)}`);
  }

  /** A resource as the YAML document `flowctl apply -p` takes back. */
  getYaml(collection: Collection, id: string): Promise<string> {
    return this.request('GET', `${collection}/${enc(id)}`, { accept: 'application/yaml' });
  }

  create<C extends Collection>(collection: C, resource: object): Promise<ICollections[C]> {
    return this.request('POST', collection, { body: resource });
  }

  replace<C extends Collection>(collection: C, id: string, resource: object): Promise<ICollections[C]> {
    return this.request('PUT', `${collection}/${enc(id)}`, { body: resource });
  }

  delete<C extends Collection>(collection: C, id: string): Promise<ICollections[C]> {
    return this.request('DELETE', `${collection}/${enc(id)}`);
  }

  /** Create or update resources of any kinds, all or nothing. */
  apply(resources: object[]): Promise<IApplied[]> {
    return this.request('POST', 'apply', { body: resources });
  }

  /** Apply a resource file's YAML text, as `flowctl apply -p` does. */
  applyYaml(text: string): Promise<IApplied[]> {
    return this.request('POST', 'apply', { yaml: text });
  }

  workflowInputs(workflow: string): Promise<WorkflowInputs> {
    return this.request('GET', `workflows/${enc(workflow)}/inputs`);
  }

  /** Create or update the one-stage workflow running `notebook` (a path under the server root). */
  notebookWorkflow(notebook: string): Promise<{ workflow: Workflow; inputs: WorkflowInputs }> {
    return this.request('POST', 'notebooks/workflow', { body: { notebook } });
  }

  setTriggerEnabled(trigger: string, enabled: boolean): Promise<Trigger> {
    return this.request('POST', `triggers/${enc(trigger)}/${enabled ? 'enable' : 'disable'}`);
  }

  triggerFirings(trigger: string, page: { limit?: number; offset?: number; since?: string } = {}): Promise<TriggerFiring[]> {
    return this.request('GET', `triggers/${enc(trigger)}/firings`, { query: page });
  }

  // -- runs ------------------------------------------------------------------------------------
  run(workflow: string, input: Record<string, unknown> = {}, options: IRunOptions = {}): Promise<WorkflowRun> {
    return this.request('POST', `workflows/${enc(workflow)}/run`, { query: options, body: input });
  }

  listRuns(query: IRunsQuery = {}): Promise<WorkflowRun[]> {
    return this.request('GET', 'runs', { query });
  }

  /** The newest run of each workflow. */
  latestRuns(): Promise<WorkflowRun[]> {
    return this.request('GET', 'runs/latest');
  }

  getRun(id: string): Promise<WorkflowRun> {
    return this.request('GET', `runs/${enc(id)}`);
  }

  deleteRun(id: string): Promise<WorkflowRun> {
    return this.request('DELETE', `runs/${enc(id)}`);
  }

  cancelRun(id: string): Promise<WorkflowRun> {
    return this.request('POST', `runs/${enc(id)}/cancel`);
  }

  /** Record a run another process runs (a kernel's `flowdapt.run_workflow`), as it is now. */
  recordRun(run: WorkflowRun): Promise<WorkflowRun> {
    return this.request('PUT', `runs/${enc(run.uid)}`, { body: run });
  }

  stageAttempts(id: string): Promise<StageAttempt[]> {
    return this.request('GET', `runs/${enc(id)}/stages`);
  }

  /** The output notebook (nbformat JSON) of a notebook stage of a run. */
  outputNotebook(run: string, stage: string): Promise<Record<string, any>> {
    return this.request('GET', `runs/${enc(run)}/stages/${enc(stage)}/notebook`);
  }

  /** Store a `%%flowdapt stage` cell's module where the server's executors import it. */
  saveStageModule(module: string, source: string): Promise<Record<string, unknown>> {
    return this.request('PUT', `stage-modules/${enc(module)}`, { body: { source } });
  }

  /** Run-history statistics aggregated by the database. */
  stats<V extends StatsView>(view: V, query: StatsQuery<V> = {} as StatsQuery<V>): Promise<StatsAnswer<V>> {
    return this.request('GET', `stats/${view}`, { query });
  }

  // -- operating runs ----------------------------------------------------------------------------
  /** Run a run's workflow version again with its input; the new run records `rerun_of`. */
  rerun(id: string, options: QueryOf<'rerun_run'> = {}): Promise<WorkflowRun> {
    return this.request('POST', `runs/${enc(id)}/rerun`, { query: options });
  }

  /** Resume a failed or cancelled run, reusing the stages it finished; the new run records `resumed_from`. */
  resume(id: string, options: QueryOf<'resume_run'> = {}): Promise<WorkflowRun> {
    return this.request('POST', `runs/${enc(id)}/resume`, { query: options });
  }

  /** What a run's stages printed and logged, numbered (`after` the last line seen). */
  runLogs(id: string, query: QueryOf<'get_run_logs'> = {}): Promise<Schemas['LogLine'][]> {
    return this.request('GET', `runs/${enc(id)}/logs`, { query: { ...query, follow: undefined } });
  }

  /** Record lines of a run another process runs (a kernel's). */
  recordRunLogs(id: string, lines: Schemas['LogLineIn'][]): Promise<Schemas['LogsRecorded']> {
    return this.request('POST', `runs/${enc(id)}/logs`, { body: lines });
  }

  /** Fire a schedule trigger for each of its due times in a range that has not fired yet. */
  backfill(trigger: string, range: Schemas['BackfillIn']): Promise<Schemas['BackfillAnswer']> {
    return this.request('POST', `triggers/${enc(trigger)}/backfill`, { body: range });
  }

  /** Delete result-cache entries of a workflow, one of its stages, or all. */
  clearCache(scope: QueryOf<'clear_cache'> = {}): Promise<Schemas['CacheCleared']> {
    return this.request('DELETE', 'cache', { query: scope });
  }

  /** Record the document of a workflow version a reported run ran. */
  recordWorkflowVersion(version: string, workflow: Workflow): Promise<Schemas['WorkflowVersionRecorded']> {
    return this.request('PUT', `workflow-versions/${enc(version)}`, { body: workflow });
  }

  // -- events and the server -------------------------------------------------------------------
  publish(event: EventIn): Promise<Record<string, unknown>> {
    return this.request('POST', 'events', { body: event });
  }

  drain(timeout?: number): Promise<Record<string, unknown>> {
    return this.request('POST', 'drain', { query: { timeout } });
  }

  undrain(): Promise<Record<string, unknown>> {
    return this.request('DELETE', 'drain');
  }

  private async request<T>(method: string, path: string, options: IRequest = {}): Promise<T> {
    const url = URLExt.join(this.apiUrl, path) + query(options.query);
    const headers: Record<string, string> = {};
    let body: string | undefined;
    if (options.yaml !== undefined) {
      headers['Content-Type'] = 'application/yaml';
      body = options.yaml;
    } else if (options.body !== undefined || method === 'POST' || method === 'PUT') {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.body ?? {});
    }
    if (options.accept) {
      headers['Accept'] = options.accept;
    }
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, { method, headers, body }, this.serverSettings);
    } catch (error) {
      throw new FlowdaptAPIError(0, `cannot reach the server: ${(error as Error).message}`);
    }
    const text = await response.text();
    if (!response.ok) {
      throw new FlowdaptAPIError(response.status, errorDetail(response, text));
    }
    if (options.accept === 'application/yaml') {
      return text as T;
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }
}

/**
 * Which method of {@link FlowdaptAPI} calls each operation of the OpenAPI document.
 * A test keeps it equal to the operations the server documents.
 */
export const OPERATIONS: Record<string, keyof FlowdaptAPI> = {
  root: 'root',
  openapi: 'openapi',
  status: 'status',
  list_plugins: 'plugins',
  get_plugin: 'plugin',
  apply_resources: 'apply',
  list_workflows: 'list',
  list_configs: 'list',
  list_triggers: 'list',
  get_workflow: 'get',
  get_config: 'get',
  get_trigger: 'get',
  create_workflow: 'create',
  create_config: 'create',
  create_trigger: 'create',
  replace_workflow: 'replace',
  replace_config: 'replace',
  replace_trigger: 'replace',
  delete_workflow: 'delete',
  delete_config: 'delete',
  delete_trigger: 'delete',
  get_workflow_inputs: 'workflowInputs',
  create_notebook_workflow: 'notebookWorkflow',
  enable_trigger: 'setTriggerEnabled',
  disable_trigger: 'setTriggerEnabled',
  list_trigger_firings: 'triggerFirings',
  run_workflow: 'run',
  list_runs: 'listRuns',
  list_latest_runs: 'latestRuns',
  get_run: 'getRun',
  delete_run: 'deleteRun',
  cancel_run: 'cancelRun',
  list_run_stages: 'stageAttempts',
  get_output_notebook: 'outputNotebook',
  record_run: 'recordRun',
  save_stage_module: 'saveStageModule',
  stats_summary: 'stats',
  stats_timeline: 'stats',
  stats_workflows: 'stats',
  stats_daily: 'stats',
  stats_errors: 'stats',
  stats_active: 'stats',
  stats_stages: 'stats',
  stats_items: 'stats',
  stats_triggers: 'stats',
  stats_version: 'stats',
  publish_event: 'publish',
  drain: 'drain',
  undrain: 'undrain',
  rerun_run: 'rerun',
  resume_run: 'resume',
  get_run_logs: 'runLogs',
  record_run_logs: 'recordRunLogs',
  backfill_trigger: 'backfill',
  clear_cache: 'clearCache',
  record_workflow_version: 'recordWorkflowVersion'
};

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

function query(values: object | undefined): string {
  const pairs = Object.entries(values ?? {}).filter(([, value]) => value !== undefined && value !== null && value !== '');
  return pairs.length ? URLExt.objectToQueryString(Object.fromEntries(pairs.map(([k, v]) => [k, String(v)]))) : '';
}

function errorDetail(response: Response, text: string): string {
  try {
    const detail = JSON.parse(text).detail;
    if (typeof detail === 'string' && detail) {
      return detail;
    }
  } catch {
    // not JSON: a proxy's or Jupyter's own page
  }
  return `${response.status} ${response.statusText || 'error'} from ${response.url}`;
}
