// Validates every PodMonitor in a rendered file against the prometheus-operator's CRD schema
// (kubernetes-validate knows only built-in kinds). Run from .ci/validate-k8s with the modules
// .ci/install-k8s-tools puts in target/ci-tools/node.
import fs from 'node:fs';
import yaml from 'js-yaml';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

const docs = yaml.loadAll(fs.readFileSync(process.argv[2], 'utf8'));
const monitors = docs.filter((doc) => doc?.kind === 'PodMonitor');
if (monitors.length === 0) {
  console.error(`no PodMonitor in ${process.argv[2]}`);
  process.exit(1);
}
for (const monitor of monitors) {
  new PodMonitor(monitor).validate(); // throws, naming the field, on a schema violation
  console.log(`PodMonitor/${monitor.metadata.name}: valid against monitoring.coreos.com/v1`);
}
