/**
 * The flowdapt icon: three stages of a DAG.
 */
import { LabIcon } from '@jupyterlab/ui-components';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="2" y="9" width="6" height="6" rx="1.5"/>
    <rect x="16" y="3" width="6" height="6" rx="1.5"/>
    <rect x="16" y="15" width="6" height="6" rx="1.5"/>
    <path d="M8 11h3.2l3.4-5H16v1.6h-.6l-3.4 5H8z"/>
    <path d="M8 13h3.2l3.4 5H16v-1.6h-.6l-3.4-5H8z"/>
  </g>
</svg>`;

export const flowdaptIcon = new LabIcon({ name: 'flowdapt:icon', svgstr: svg });
