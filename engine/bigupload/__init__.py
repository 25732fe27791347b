"""bigupload: resumable, parallel multipart uploads to S3 and S3-compatible stores.

Re-exports only; see ``uploader`` for the entry points and ``errors`` for the tree."""

from .batch import BatchItem, BatchProgress, BatchResult, ItemResult, NullBatchProgress
from .config import ChecksumAlgorithm, ServerSideEncryption, UploadConfig, parse_size
from .errors import (
    AuthError,
    BigUploadError,
    Cancelled,
    ClusterError,
    ConfigError,
    DestinationChangedError,
    ExistsError,
    IntegrityError,
    JournalError,
    NotFoundError,
    ResumeError,
    SourceChangedError,
    SourceError,
    StoreError,
)
from .journal import FileState, JobState
from .progress import NullProgress, Progress
from .reports import AbortReport
from .upload import Phase, UploadResult
from .uploader import Uploader, upload_file, upload_file_sync
from .values import MultipartUpload, Owner, PartListing, RemotePart

__version__ = "0.1.0"

__all__ = [
    "AbortReport",
    "AuthError",
    "BatchItem",
    "BatchProgress",
    "BatchResult",
    "BigUploadError",
    "Cancelled",
    "ChecksumAlgorithm",
    "ClusterError",
    "ConfigError",
    "DestinationChangedError",
    "ExistsError",
    "FileState",
    "IntegrityError",
    "ItemResult",
    "JobState",
    "JournalError",
    "MultipartUpload",
    "NotFoundError",
    "NullBatchProgress",
    "NullProgress",
    "Owner",
    "PartListing",
    "Phase",
    "Progress",
    "RemotePart",
    "ResumeError",
    "ServerSideEncryption",
    "SourceChangedError",
    "SourceError",
    "StoreError",
    "UploadConfig",
    "UploadResult",
    "Uploader",
    "parse_size",
    "upload_file",
    "upload_file_sync",
]
