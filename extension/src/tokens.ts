/**
 * Command ids (all `flowdapt:*`, in the palette under "flowdapt") and names shared by the plugins.
 */
export namespace CommandIDs {
  export const openSidebar = 'flowdapt:open-sidebar';
  export const refresh = 'flowdapt:refresh';
  export const runWorkflow = 'flowdapt:run-workflow';
  export const openRun = 'flowdapt:open-run';
  export const openRunFromUrl = 'flowdapt:open-run-from-url';
  export const openDag = 'flowdapt:open-dag';
  export const openYaml = 'flowdapt:open-yaml';
  export const deleteWorkflow = 'flowdapt:delete-workflow';
  export const cancelRun = 'flowdapt:cancel-run';
  export const rerun = 'flowdapt:rerun';
  export const resumeRun = 'flowdapt:resume-run';
  export const toggleTrigger = 'flowdapt:toggle-trigger';
  export const deleteTrigger = 'flowdapt:delete-trigger';
  export const applyFile = 'flowdapt:apply-file';
  export const runNotebook = 'flowdapt:run-notebook';
  export const scheduleNotebook = 'flowdapt:schedule-notebook';
  export const openDashboard = 'flowdapt:open-dashboard';
  export const openExecutorDashboard = 'flowdapt:open-executor-dashboard';
  export const openOutputNotebook = 'flowdapt:open-output-notebook';
}

export const PLUGIN_ID = '@flowdapt/labextension:plugin';
export const SIDEBAR_ID = 'flowdapt-sidebar';
export const CATEGORY = 'flowdapt';
/** The drive that serves output notebooks read-only (see `outputs-drive.ts`). */
export const OUTPUTS_DRIVE = 'flowdapt-outputs';
/** The query parameter that opens a run's view: `{base_url}lab?flowdapt-run=<uid or name>`. */
export const RUN_URL_PARAMETER = 'flowdapt-run';
/** The Panel dashboard of run history, served by the server under the base URL. */
export const DASHBOARD_PATH = 'flowdapt/dashboard/';
