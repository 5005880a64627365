"""The registries of the local stack: Debian's Distribution registry run as a server (``registry``,
with token or basic auth) behind fronts that play Docker Hub (``hubfront``, with its token service)
and ECR's registry API (``ecrfront``); the CDN and S3 download endpoint both redirect blob downloads
to (``cdn``); the OCI referrers API (``referrers``); and what the fronts share (``proxy``). They
import no AWS stand-in: where the ECR front needs AWS's judgement (a repository's policy, moto's
repositories), the code that builds it injects it.
"""
