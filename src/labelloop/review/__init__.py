"""People in the loop, one module per job; the web app, the CLI and `Project` call them.

- `accounts`: users, passwords, API tokens and browser sessions;
- `queues`: review tasks, queue settings, and the leases that hand tasks out;
- `answers`: recording, withdrawing and resolving answers (`Project.annotate` and the review API
  share it);
- `overview`: what people and admins see of the work (the dashboard).

The services decide who may do what; the store's named queries (`labelloop.store.accounts`,
`labelloop.store.reviews`) read and write the rows, inside the transaction a service opens. The
services take a `ProjectScope` (what they need of a project), never `Project` itself, which owns
them. Results that the CLI and the API send are frozen dataclasses (`common.Result`). The names
below are the package's public surface; tests replace `common.clock` to let time pass and
`accounts.PASSWORD_HASHER` for cheap hashing.
"""

from __future__ import annotations

from ..errors import ConflictError, ForbiddenError, InputError, NotFoundError
from . import accounts, answers, common, overview, queues
from .accounts import (
    ACCOUNTS_CHECK_S,
    MAX_LABELSTUDIO_USER,
    MIN_PASSWORD,
    ROLES,
    SESSION_HOURS,
    TOKEN_CACHE_S,
    Principal,
    add_user,
    authenticate,
    cached_principal,
    check_user_name,
    create_session,
    create_token,
    end_session,
    get_user,
    link_labelstudio,
    list_users,
    new_token,
    parse_duration,
    principal_for_token,
    revoke,
    session_principal,
    set_active,
    set_password,
    user_name_problem,
)
from .answers import (
    Answer,
    AnswerIn,
    GoldFeedback,
    Submitted,
    Undone,
    annotate,
    submit,
    unannotate,
    undo,
)
from .common import ProjectScope, Stats
from .overview import (
    MyAnswer,
    ProjectInfo,
    QueueCounts,
    annotations_of,
    dashboard,
    plot_files,
    project_info,
    queue_counts,
)
from .queues import (
    DEFAULT_SETTINGS,
    MAX_EXCLUDE,
    MAX_TEXT_SHOWN,
    SETTING_BOUNDS,
    Bounds,
    apply_overlap,
    check_setting,
    enqueue,
    next_item,
    queue_settings,
    release_leases,
    sample_audit,
    set_queue_settings,
)

__all__ = [
    "ACCOUNTS_CHECK_S",
    "DEFAULT_SETTINGS",
    "MAX_EXCLUDE",
    "MAX_LABELSTUDIO_USER",
    "MAX_TEXT_SHOWN",
    "MIN_PASSWORD",
    "ROLES",
    "SESSION_HOURS",
    "SETTING_BOUNDS",
    "TOKEN_CACHE_S",
    "Answer",
    "AnswerIn",
    "Bounds",
    "ConflictError",
    "ForbiddenError",
    "GoldFeedback",
    "InputError",
    "MyAnswer",
    "NotFoundError",
    "Principal",
    "ProjectInfo",
    "ProjectScope",
    "QueueCounts",
    "Stats",
    "Submitted",
    "Undone",
    "accounts",
    "add_user",
    "annotate",
    "annotations_of",
    "answers",
    "apply_overlap",
    "authenticate",
    "cached_principal",
    "check_setting",
    "check_user_name",
    "common",
    "create_session",
    "create_token",
    "dashboard",
    "end_session",
    "enqueue",
    "get_user",
    "link_labelstudio",
    "list_users",
    "new_token",
    "next_item",
    "overview",
    "parse_duration",
    "plot_files",
    "principal_for_token",
    "project_info",
    "queue_counts",
    "queue_settings",
    "queues",
    "release_leases",
    "revoke",
    "sample_audit",
    "session_principal",
    "set_active",
    "set_password",
    "set_queue_settings",
    "submit",
    "unannotate",
    "undo",
    "user_name_problem",
]
