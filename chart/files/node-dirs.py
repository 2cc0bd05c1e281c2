# The node agent's init container `node-dirs` (templates/node-agent.yaml): root with only
# CAP_CHOWN, it makes the directories the non-root agent writes its own, before it starts.
#   node-dirs.py UID GID SHARED_DIR OWN_DIR...
# OWN_DIR (the driver's kubelet plugin and registration directories, the simulated tree): the
# directory and everything in it become UID:GID (trees a root agent left behind included).
# SHARED_DIR (/var/run/cdi, other vendors' CDI specs): not chowned. A POSIX ACL entry gives UID
# write and search in it, and the sticky bit keeps every other file its owner's: the agent
# creates its specs and renames or deletes only its own. Root owns the directory, so neither
# needs a capability. The existing ACL entries and mode stay.
import errno
import os
import struct
import sys

ACL_XATTR = "system.posix_acl_access"
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED = 0xFFFFFFFF


def fail(err: OSError) -> None:
    sys.exit(f"node-dirs: {err.filename}: {err.strerror}")


def own(top: str, uid: int, gid: int) -> None:
    top = os.path.realpath(top)  # a mount point; the local chart runner links it instead
    for directory, dirs, files in os.walk(top, onerror=fail):
        for path in [directory, *(os.path.join(directory, n) for n in dirs + files)]:
            os.chown(path, uid, gid, follow_symlinks=False)


def acl_entries(path: str) -> dict[tuple[int, int], int]:
    """(tag, id) -> permissions of the directory's access ACL (its mode when it has none)."""
    try:
        raw = os.getxattr(path, ACL_XATTR)
    except OSError as err:
        if err.errno != errno.ENODATA:
            raise
        mode = os.stat(path).st_mode
        return {(USER_OBJ, UNDEFINED): mode >> 6 & 7, (GROUP_OBJ, UNDEFINED): mode >> 3 & 7,
                (OTHER, UNDEFINED): mode & 7}
    return {(tag, ident): perm for tag, perm, ident in struct.iter_unpack("<HHI", raw[4:])}


def share(path: str, uid: int) -> None:
    entries = acl_entries(path)
    entries[(USER, uid)] = 7  # rwx: create, rename, remove (the sticky bit: its own files)
    mask = 0  # as setfacl computes it: the union of the group class's entries
    for (tag, _), perm in entries.items():
        if tag in (USER, GROUP_OBJ, GROUP):
            mask |= perm
    entries[(MASK, UNDEFINED)] = mask
    raw = struct.pack("<I", 2) + b"".join(  # the kernel wants them sorted by tag, then id
        struct.pack("<HHI", tag, perm, ident) for (tag, ident), perm in sorted(entries.items()))
    os.setxattr(path, ACL_XATTR, raw)
    os.chmod(path, os.stat(path).st_mode & 0o7777 | 0o1000)


def main(argv: list[str]) -> None:
    uid, gid, shared, *owned = argv
    try:
        for top in owned:
            own(top, int(uid), int(gid))
        share(shared, int(uid))
    except OSError as err:
        fail(err)
    print(f"node-dirs: {', '.join(owned)} are {uid}:{gid}'s; {uid} may add files to {shared}")


main(sys.argv[1:])
