/**
 * Output notebooks, opened in Lab read-only. They live under the server's app dir
 * (`<app_dir>/outputs/<run uid>/<stage>.ipynb`), outside the Jupyter root, so Lab's contents API
 * cannot reach them: this drive serves them from the REST route `runs/{id}/stages/{stage}/notebook`
 * as `flowdapt-outputs:<run uid>/<stage>.ipynb`. Nothing is copied into the workbench; "Save As"
 * writes a copy where the user chooses.
 */
import { URLExt } from '@jupyterlab/coreutils';
import type { Contents } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import type { FlowdaptAPI } from '../api';
import { OUTPUTS_DRIVE } from '../tokens';

/** The path Lab opens for the output notebook of `stage` in run `run`. */
export function outputNotebookPath(run: string, stage: string): string {
  return `${OUTPUTS_DRIVE}:${run}/${stage}.ipynb`;
}

export class OutputNotebooksDrive implements Contents.IDrive {
  constructor(private readonly api: FlowdaptAPI) {}

  readonly name = OUTPUTS_DRIVE;

  get serverSettings() {
    return this.api.serverSettings;
  }

  get fileChanged(): ISignal<Contents.IDrive, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    this._disposed = true;
    Signal.clearData(this);
  }

  async get(localPath: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    const parts = parse(localPath);
    if (!parts) {
      return { name: '', path: localPath, type: 'directory', writable: false, created: EPOCH, last_modified: EPOCH,
               mimetype: '', content: options?.content === false ? null : [], format: 'json' };
    }
    const notebook = await this.api.outputNotebook(parts.run, parts.stage);
    // Written once, when papermill ended: its end time is the file's time.
    const written = notebook.metadata?.papermill?.end_time ?? notebook.metadata?.papermill?.start_time ?? EPOCH;
    return {
      name: `${parts.stage}.ipynb`, path: localPath, type: 'notebook', writable: false, created: written,
      last_modified: written, mimetype: 'application/x-ipynb+json', content: options?.content === false ? null : notebook,
      format: options?.content === false ? null : 'json'
    };
  }

  async getDownloadUrl(localPath: string): Promise<string> {
    const parts = parse(localPath);
    if (!parts) {
      throw new Error(`not an output notebook: ${localPath}`);
    }
    return URLExt.join(this.api.apiUrl, 'runs', encodeURIComponent(parts.run), 'stages', encodeURIComponent(parts.stage), 'notebook');
  }

  async listCheckpoints(): Promise<Contents.ICheckpointModel[]> {
    return [];
  }

  newUntitled(): Promise<Contents.IModel> {
    return readOnly();
  }

  delete(): Promise<void> {
    return readOnly();
  }

  rename(): Promise<Contents.IModel> {
    return readOnly();
  }

  save(): Promise<Contents.IModel> {
    return readOnly();
  }

  copy(): Promise<Contents.IModel> {
    return readOnly();
  }

  createCheckpoint(): Promise<Contents.ICheckpointModel> {
    return readOnly();
  }

  restoreCheckpoint(): Promise<void> {
    return readOnly();
  }

  deleteCheckpoint(): Promise<void> {
    return readOnly();
  }

  private _disposed = false;
  private _fileChanged = new Signal<Contents.IDrive, Contents.IChangedArgs>(this);
}

const EPOCH = new Date(0).toISOString();

function parse(localPath: string): { run: string; stage: string } | null {
  const match = /^([^/]+)\/([^/]+)\.ipynb$/.exec(localPath);
  return match ? { run: match[1], stage: match[2] } : null;
}

function readOnly(): Promise<never> {
  return Promise.reject(new Error('Output notebooks are read-only: use "Save Notebook As…" to keep a copy in your workbench.'));
}
