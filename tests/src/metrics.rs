//! `/metrics` as Prometheus reads it: scraped by Python's `prometheus_client` (its strict
//! OpenMetrics parser, and its Prometheus text parser), from the test venv.

use std::time::Duration;

use serde_json::Value;

use crate::run_python;

/// `/metrics` scraped by Python: each sample as `[name, labels, value]`, parsed by
/// prometheus_client's OpenMetrics parser (strict) and by its Prometheus text parser,
/// and the Content-Type.
pub fn scrape(base: &str) -> Value {
    let script = r#"
import json, sys, urllib.request
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus
with urllib.request.urlopen(sys.argv[1]) as r:
    text, content_type = r.read().decode(), r.headers["Content-Type"]
families = list(openmetrics(text))
out = {
    "content_type": content_type,
    "types": {f.name: f.type for f in families},
    "samples": [[s.name, s.labels, s.value] for f in families for s in f.samples],
}
try:
    out["prometheus"] = [[s.name, s.labels, s.value] for f in prometheus(text) for s in f.samples]
except Exception as e:
    out["prometheus_error"] = repr(e)
print(json.dumps(out))
"#;
    let (status, out, err) = run_python(
        script,
        &[format!("{base}/metrics")],
        Duration::from_secs(30),
    );
    assert!(
        status.success(),
        "the OpenMetrics parser refused /metrics: {err}"
    );
    serde_json::from_str(&out).expect("the script's JSON")
}

/// The value of the sample `name` whose labels include `labels`.
pub fn sample(samples: &Value, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples.as_array()?.iter().find_map(|s| {
        (s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v)).then(|| s[2].as_f64())?
    })
}
