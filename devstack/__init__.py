"""The local stack hubmirror's tests, demo and benchmarks run against (see stack.py).

Its stand-ins are grouped by the service each plays: ``registries/`` (Docker Hub and ECR's
registry API, the CDN they redirect to), ``aws/`` (moto and its extensions: IAM, Lambda,
CodeBuild, Step Functions, EventBridge, and the deployment of ``template.yaml``) and
``content/`` (the images, signatures and workloads pushed into them). ``stack`` and ``demo``
put them together; ``procs`` (processes and ports) and ``faults`` (faults injected into any
stand-in) serve every group.
"""
