"""The words the store, the API and the exports share, each defined once.

Every value is a `StrEnum`: a member is the string the store holds and the API sends (so
``Action.SKIP == "skip"``), and a typo in code is a name error instead of a silent mismatch.
Changing a value changes the store's and the API's contract: add members, never rename them.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What a person does with an item (`Annotation.action`)."""

    LABEL = "label"  # a label given from scratch
    ACCEPT = "accept"  # the suggestion is right
    CORRECT = "correct"  # the suggestion is wrong; here is the right label
    REJECT = "reject"  # the suggestion is wrong; no label given
    SKIP = "skip"  # no answer


#: The actions that give the item a label.
LABELING_ACTIONS: tuple[Action, ...] = (Action.LABEL, Action.ACCEPT, Action.CORRECT)
#: The actions that leave the item without a label.
NO_LABEL_ACTIONS: tuple[Action, ...] = (Action.REJECT, Action.SKIP)


class Queue(StrEnum):
    """Where an answer was asked for (`ReviewTask.queue`, `Annotation.queue`)."""

    REVIEW = "review"  # routing: no confident prediction
    ACTIVE = "active"  # active learning: the most useful items
    AUDIT = "audit"  # a sample of auto-accepted items
    RECHECK = "recheck"  # likely label issues, for a second look
    GOLD = "gold"  # a gold check mixed into a person's stream (answers only, never a task)


#: The queues that hold review tasks.
TASK_QUEUES: tuple[Queue, ...] = (Queue.REVIEW, Queue.ACTIVE, Queue.AUDIT, Queue.RECHECK)


class ItemState(StrEnum):
    """Where an item stands in the loop (`Item.state`)."""

    UNRESOLVED = "unresolved"  # no label yet and not routed
    AUTO_ACCEPTED = "auto_accepted"  # the LLM label was confident enough
    IN_REVIEW = "in_review"  # waiting for a person
    HUMAN_LABELED = "human_labeled"  # a person (or the gold set) gave the label


class Split(StrEnum):
    """Which set an item belongs to (`Item.split`)."""

    POOL = "pool"  # to be labeled
    GOLD = "gold"  # trusted labels, for calibration and evaluation


class LabelSource(StrEnum):
    """Where an item's final label came from (`Item.final_source`, `label_source` in exports)."""

    HUMAN = "human"
    ADJUDICATED = "adjudicated"  # a reviewer settled the item (disagreement, rejection, flag)
    LLM = "llm"


#: The sources that are people's word on an item (trusted for training and evaluation).
PEOPLE_SOURCES: tuple[LabelSource, ...] = (LabelSource.HUMAN, LabelSource.ADJUDICATED)


class Role(StrEnum):
    """What an account may do (`Annotator.role`)."""

    ADMIN = "admin"  # everything, adjudication included
    REVIEWER = "reviewer"  # an annotator who also settles items in the adjudication queue
    ANNOTATOR = "annotator"  # answers the items it is served
    SERVICE = "service"  # machine callers such as Label Studio's ML-backend requests


#: Project settings of multi-label projects: items take label sets; an empty set is allowed.
MULTI_LABEL, ALLOW_EMPTY = "multi_label", "allow_empty"

__all__ = [
    "ALLOW_EMPTY",
    "LABELING_ACTIONS",
    "MULTI_LABEL",
    "NO_LABEL_ACTIONS",
    "PEOPLE_SOURCES",
    "TASK_QUEUES",
    "Action",
    "ItemState",
    "LabelSource",
    "Queue",
    "Role",
    "Split",
]
