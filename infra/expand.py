#!/usr/bin/env python3
"""Expand infra/template.yaml with aws-sam-translator, offline, so that
cfn-lint can check the CloudFormation it really becomes (cfn-lint alone misses
errors inside AWS::Serverless::Function events).

    python3 infra/expand.py infra/template.yaml expanded.json
"""
import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The template names no managed policies: nothing to look up in IAM."""

    def load(self):
        return {}


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        template = yaml_parse(f.read())
    # What `sam package` does: local code becomes an S3 object.
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and not str(props.get("CodeUri", "")).startswith("s3://"):
            props["CodeUri"] = "s3://streamfold-validate/code.zip"
        # A local state machine definition is inlined, so that cfn-lint
        # checks it too (sam package would upload it instead).
        uri = props.get("DefinitionUri")
        if resource.get("Type") == "AWS::Serverless::StateMachine" and isinstance(uri, str) and not uri.startswith("s3://"):
            # Beside the template, or beside this script (a template
            # copied elsewhere, as CI's deliberately broken one).
            path = os.path.join(os.path.dirname(os.path.abspath(src)), uri)
            if not os.path.exists(path):
                path = os.path.join(os.path.dirname(os.path.abspath(__file__)), uri)
            with open(path) as f:
                props["Definition"] = json.load(f)
            del props["DefinitionUri"]
    expanded = transform(template, {}, NoManagedPolicies())
    with open(dst, "w") as f:
        json.dump(expanded, f, indent=1, default=str)
    print(f"expanded {src} -> {dst}")


if __name__ == "__main__":
    main()
