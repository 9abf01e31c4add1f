"""The reference department agent: one small WSGI service per department.

It is configured only through ``AGENT_*`` environment variables (see
``department_agent.app``) so that no credential ever appears on a command line.
The WSGI factory lives in ``department_agent.app:create_app``; this package
deliberately imports nothing so ``department_agent.launch`` stays stdlib-only.
"""
