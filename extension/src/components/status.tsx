/**
 * The status bar item: how many runs are pending or running on the server; a click opens the sidebar.
 */
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import * as React from 'react';

import { flowdaptIcon } from '../icons';
import type { WorkbenchModel } from '../model/workbench';

export class RunningStatus extends ReactWidget {
  constructor(private readonly model: WorkbenchModel, private readonly onClick: () => void) {
    super();
    this.addClass('jp-flowdapt-status');
    this.node.title = 'flowdapt runs pending or running';
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => (
          <span className="jp-flowdapt-status-item" onClick={this.onClick} data-running={this.model.activeCount}>
            <flowdaptIcon.react tag="span" className="jp-flowdapt-status-icon" />
            {this.model.activeCount} running
          </span>
        )}
      </UseSignal>
    );
  }
}
