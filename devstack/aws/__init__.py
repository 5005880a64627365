"""AWS on the local stack: moto 5 in server mode with documented extensions, each refusing a moto it
was not written for (``motoversion``). The deployment of ``template.yaml`` (``deploy``), IAM as AWS
evaluates it (``iam``), Lambda functions run in warm workers (``lambdas``, ``lambda_worker``),
CodeBuild running the buildspec in a Debian 12 build image (``codebuild``, ``buildimage``), and
Step Functions and EventBridge as strict as AWS (``sfnerrors``, ``sfntargets``, ``mapruns``,
``eventsize``). Imports no registry stand-in.
"""
