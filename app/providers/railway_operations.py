"""Every GraphQL document the Railway driver sends, in one place.

Each one validates against Railway's real schema (``tests/unit/test_railway_operations.py``
checks them against the introspection of the official CLI's ``src/gql/schema.json``), and
each mutation is one the Railway CLI itself sends: ``serviceCreate`` with ``source`` and
``variables`` in its input (the CLI's ``ServiceCreate.graphql``), ``serviceInstanceUpdate``
with ``input: {source: ...}`` (``UpdateServiceSource.graphql``), ``serviceInstanceDeployV2``,
``variableCollectionUpsert``, ``serviceDomainCreate`` and ``serviceDelete``.
"""

from __future__ import annotations

Q_PROJECT_SERVICES = """
query projectServices($id: String!) {
  project(id: $id) { services { edges { node { id name } } } }
}"""

# One request reads everything create() compares: the image the instance is built from,
# its latest deployment, its resource limits (a JSON object with vCPUs and memoryGB) and
# its raw variables (unrendered, so ${{Other.VAR}} references compare equal).
Q_SERVICE_STATE = """
query serviceState($projectId: String!, $environmentId: String!, $serviceId: String!) {
  serviceInstance(serviceId: $serviceId, environmentId: $environmentId) {
    source { image }
    latestDeployment { id status staticUrl url }
  }
  serviceInstanceLimits(serviceId: $serviceId, environmentId: $environmentId)
  variables(
    projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId, unrendered: true
  )
}"""

# check(): the image, the latest deployment, and what serves while a newer one builds.
Q_SERVICE_HEALTH = """
query serviceHealth($environmentId: String!, $serviceId: String!) {
  serviceInstance(serviceId: $serviceId, environmentId: $environmentId) {
    source { image }
    latestDeployment { id status }
    activeDeployments { id status }
  }
}"""

M_SERVICE_CREATE = """
mutation serviceCreate($input: ServiceCreateInput!) {
  serviceCreate(input: $input) { id name }
}"""

M_SOURCE_UPDATE = """
mutation serviceInstanceUpdate(
  $serviceId: String!, $environmentId: String!, $input: ServiceInstanceUpdateInput!
) {
  serviceInstanceUpdate(serviceId: $serviceId, environmentId: $environmentId, input: $input)
}"""

M_LIMITS_UPDATE = """
mutation serviceInstanceLimitsUpdate($input: ServiceInstanceLimitsUpdateInput!) {
  serviceInstanceLimitsUpdate(input: $input)
}"""

M_VARIABLES_UPSERT = """
mutation variableCollectionUpsert($input: VariableCollectionUpsertInput!) {
  variableCollectionUpsert(input: $input)
}"""

M_DEPLOY = """
mutation serviceInstanceDeployV2($serviceId: String!, $environmentId: String!) {
  serviceInstanceDeployV2(serviceId: $serviceId, environmentId: $environmentId)
}"""

Q_DEPLOYMENT = """
query deployment($id: String!) {
  deployment(id: $id) { id status staticUrl url }
}"""

Q_DOMAINS = """
query domains($projectId: String!, $environmentId: String!, $serviceId: String!) {
  domains(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId) {
    serviceDomains { id domain }
  }
}"""

M_DOMAIN_CREATE = """
mutation serviceDomainCreate($input: ServiceDomainCreateInput!) {
  serviceDomainCreate(input: $input) { id domain }
}"""

M_DOMAIN_DELETE = """
mutation serviceDomainDelete($id: String!) {
  serviceDomainDelete(id: $id)
}"""

# Without environmentId: the whole service goes, not just this environment's instance.
M_SERVICE_DELETE = """
mutation serviceDelete($id: String!) {
  serviceDelete(id: $id)
}"""

ALL_OPERATIONS: tuple[str, ...] = (
    Q_PROJECT_SERVICES,
    Q_SERVICE_STATE,
    Q_SERVICE_HEALTH,
    M_SERVICE_CREATE,
    M_SOURCE_UPDATE,
    M_LIMITS_UPDATE,
    M_VARIABLES_UPSERT,
    M_DEPLOY,
    Q_DEPLOYMENT,
    Q_DOMAINS,
    M_DOMAIN_CREATE,
    M_DOMAIN_DELETE,
    M_SERVICE_DELETE,
)
