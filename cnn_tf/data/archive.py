"""Published tar archives unpacked without trusting them: no member outside the target, no links
or devices (CIFAR-10's, the Oxford-IIIT Pet's)."""
import os
import shutil
import tarfile
import tempfile

from cnn_tf.data.download import download
from cnn_tf.errors import UserError


def safe_extract(archive, destination):
    """Extracts the regular files and folders of a tar archive into `destination`, refusing any
    member that is a link or device, or whose path would land outside `destination`."""
    root = os.path.realpath(destination)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                target = os.path.realpath(os.path.join(root, member.name))
                if os.path.isabs(member.name) or not (target == root or target.startswith(root + os.sep)):
                    raise UserError(f"{archive}: member {member.name!r} would be written outside "
                                    f"{destination}; refusing the archive")
                if not (member.isfile() or member.isdir()):
                    raise UserError(f"{archive}: member {member.name!r} is a link or device; refusing the archive")
            for member in members:
                target = os.path.join(root, member.name)
                if member.isdir():
                    os.makedirs(target, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with tar.extractfile(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise UserError(f"cannot extract {archive}: {e}; delete it and fetch it again") from e


def find_or_download(dataset, name, sha256, directories, target, mirror, folder):
    """The path of archive `name`: a copy in one of `directories`, or else downloaded from `mirror`
    into `target` (SHA-256 checked); `folder` is what it unpacks to, for the message."""
    archive = next((os.path.join(d, name) for d in directories if os.path.isfile(os.path.join(d, name))), None)
    if archive is not None:
        return archive
    try:
        return download(mirror.rstrip("/") + "/" + name, os.path.join(target, name), sha256)
    except UserError as e:
        raise UserError(f"{dataset}: {name} is not in {', '.join(directories)} and {e}; to get it, put the "
                        f"archive (or its extracted {folder}/) in --data_dir") from e


def extract_folder(archive, target, folder, expected, what, name=None):
    """Extracts `archive`'s top `folder` (with "": the whole archive) to `target`/`name` (default:
    `folder`), refusing an archive without `folder`/`expected` (`what` it should be, for the message).
    Extracted beside the final place and renamed, so an interrupted extraction leaves no half folder."""
    os.makedirs(target, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".extract-", dir=target)
    try:
        unpacked = os.path.join(staging, "unpacked")
        safe_extract(archive, unpacked)
        if not os.path.exists(os.path.join(unpacked, folder, expected)):
            raise UserError(f"{archive} has no {os.path.join(folder, expected)}: not {what}")
        os.replace(os.path.normpath(os.path.join(unpacked, folder)), os.path.join(target, name or folder))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
