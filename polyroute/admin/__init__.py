"""The administration commands (``polyroute keys|teams|orgs|usage|budget|admin``): they call a
running gateway's admin API, or serve one call in process against the config's database. The
admin API itself is a surface (:mod:`polyroute.surface.admin`) over
:class:`polyroute.policy.admin.AdminService`."""
