"""Least privilege: what each function's role may do, on which resources, in each environment."""

from __future__ import annotations

from tests.template.cloudformation import ACCOUNT, Environment, Stack, statements

MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}


def grants(stack: Stack, role: str) -> dict[str, set[str]]:
    """Action -> resources over the role's inline statements (all Allow)."""
    found: dict[str, set[str]] = {}
    for statement in statements(stack.resource(role), stack):
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in statement["Action"]:
            found.setdefault(action, set()).update(statement["Resource"])
    return found


def test_iam_forwarder_role_least_privilege(stack: Stack, env: Environment) -> None:
    # GIVEN the forwarder's job (read the stored mail, read the aliases, send as the domain, record forwards,
    # sign links and reply addresses, keep reply addresses, report failures) THEN its role may do exactly that,
    # each on its own resource
    region, domain = env.region, env.parameters["DomainName"]
    identity = f"arn:aws:ses:{region}:{ACCOUNT}:identity/{domain}"
    configuration_set = f"arn:aws:ses:{region}:{ACCOUNT}:configuration-set/<Ref:ConfigurationSet>"
    path = f"arn:aws:ssm:{region}:{ACCOUNT}:parameter/email-forwarder/{env.name}/aliases"
    table = {"<IdempotencyTable.Arn>"}
    both = table | {"<ReplyTable.Arn>"}
    assert grants(stack, "ForwarderFunctionRole") == {
        "s3:GetObject": {"<MailBucket.Arn>/inbound/*"},
        "ses:SendEmail": {identity, configuration_set},
        "ses:SendRawEmail": {identity, configuration_set},
        "ses:GetEmailIdentity": {identity},
        "ses:GetAccount": {"*"},
        "ssm:GetParametersByPath": {path, f"{path}/*"},
        "ssm:GetParameters": {path, f"{path}/*"},
        "ssm:GetParameter": {path, f"{path}/*"},
        "dynamodb:GetItem": both,
        # the trace is put in the same TransactWriteItems as a send's claim
        "dynamodb:PutItem": {*table, "<TraceTable.Arn>"},
        "dynamodb:UpdateItem": both,
        "dynamodb:DeleteItem": table,
        "secretsmanager:GetSecretValue": {"<Ref:LinkSecret>"},
        "sqs:SendMessage": {"<FailureQueue.Arn>"},
    }


def test_iam_delivery_role_records_the_trace_and_alarms_only(stack: Stack) -> None:
    # GIVEN the delivery function's job (merge SES events into the trace table, claim an alarm once, publish it,
    # complete the forwarder's send claims from their Send events)
    # THEN its role may do exactly that, on the trace table, the alarm topic and the claims table
    table = {"<TraceTable.Arn>"}
    assert grants(stack, "DeliveryFunctionRole") == {
        "dynamodb:GetItem": table,
        "dynamodb:PutItem": table,
        "dynamodb:DeleteItem": table,
        "sns:Publish": {"<Ref:AlarmTopic>"},
        "dynamodb:UpdateItem": {"<IdempotencyTable.Arn>"},
    }


def test_iam_only_get_account_has_a_wildcard_resource(stack: Stack) -> None:
    # GIVEN ses:GetAccount has no resource type in IAM THEN it is the forwarder's only "*", alone in its statement
    for role in ("ForwarderFunctionRole", "DownloadFunctionRole", "DeliveryFunctionRole"):
        for statement in statements(stack.resource(role), stack):
            if "*" in statement["Resource"]:
                assert statement["Action"] == ["ses:GetAccount"], statement
            assert not any("*" in action for action in statement["Action"]), statement


def test_iam_download_role_reads_mail_and_key_only(stack: Stack) -> None:
    assert grants(stack, "DownloadFunctionRole") == {
        "s3:GetObject": {"<MailBucket.Arn>/inbound/*"},
        "secretsmanager:GetSecretValue": {"<Ref:LinkSecret>"},
    }


def test_iam_activation_role_only_manages_receipt_rule_sets(stack: Stack) -> None:
    # GIVEN the shared rule set's custom resource (create if missing, activate, check, delete when empty) THEN its
    # role may do exactly that; "*" because IAM defines no resource type for these SES v1 actions (and the active
    # set is an account-and-region setting without an ARN)
    assert grants(stack, "RuleSetActivationFunctionRole") == {
        "ses:DescribeActiveReceiptRuleSet": {"*"},
        "ses:SetActiveReceiptRuleSet": {"*"},
        "ses:DescribeReceiptRuleSet": {"*"},
        "ses:CreateReceiptRuleSet": {"*"},
        "ses:DeleteReceiptRuleSet": {"*"},
    }


def test_iam_activation_role_only_in_its_stacks_region(stack: Stack, env: Environment) -> None:
    # GIVEN the activation role's "*" (no resource type for the receipt-rule-set actions) and environments in
    # other regions of the account, whose active rule set is their receiving
    for statement in statements(stack.resource("RuleSetActivationFunctionRole"), stack):
        # THEN each of its statements holds to the stack's region
        assert statement["Condition"] == {"StringEquals": {"aws:RequestedRegion": env.region}}, statement


def test_iam_roles_trust_lambda_and_use_known_managed_policies(stack: Stack) -> None:
    roles = stack.resources("AWS::IAM::Role")
    assert set(roles) == {
        "ForwarderFunctionRole",
        "DownloadFunctionRole",
        "RuleSetActivationFunctionRole",
        "DeliveryFunctionRole",
    }
    for logical_id, role in roles.items():
        trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust == [
            {"Action": ["sts:AssumeRole"], "Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com"]}}
        ]
        assert set(role["Properties"]["ManagedPolicyArns"]) <= MANAGED, logical_id


def test_iam_public_principals_only_on_the_download_url(stack: Stack) -> None:
    # GIVEN resource policies THEN "*" may only call the download function, and only through its URL
    for logical_id in stack.resources("AWS::Lambda::Permission"):
        properties = stack.properties(logical_id)
        if properties["Principal"] == "*":
            assert properties["FunctionName"] == "<DownloadFunction.Arn>"
            assert properties.get("FunctionUrlAuthType") == "NONE" or properties.get("InvokedViaFunctionUrl") is True
        elif properties["Principal"] == "sns.amazonaws.com":
            # the SES events topic invokes the delivery function, and nothing else may through SNS
            assert properties["FunctionName"] == "<Ref:DeliveryFunction>"
            assert properties["SourceArn"] == "<Ref:SesEventsTopic>"
        else:
            assert properties["Principal"] == "ses.amazonaws.com"
            assert properties["SourceAccount"] == ACCOUNT
